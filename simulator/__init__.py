"""The simulator; importing it registers its Gymnasium environments (`ranpd.simulator.env`)."""
import gymnasium as gym

gym.register("ranpd/LinkAdaptation-v0", entry_point="ranpd.simulator.env:LinkAdaptationEnv")
gym.register("ranpd/LinkAdaptationUE-v0", entry_point="ranpd.simulator.env:LinkAdaptationUEEnv")
