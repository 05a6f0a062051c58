import click
@click.command()
def scenarios(): pass
simulate=bench=tbs=demo=None
