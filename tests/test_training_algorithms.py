"""Tensor-level checks of the training algorithms (no simulator needed)."""
import numpy as np
import pytest
import torch

from ranpd.simulator.observation import OBS_DIM
from ranpd.training.config import DqnConfig, load_profile
from ranpd.training.distill import distillation_loss, resample_prices
from ranpd.training.dqn import ReplayBuffer, bandit_loss, epsilon_at
from ranpd.training.networks import N_ACTIONS, PRICE, STUDENT_MAX_PARAMS, PricedQ, count_params, describe, priced_scores

torch.set_num_threads(1)


def test_kl_loss_is_zero_only_when_the_student_scores_are_the_teachers():
    teacher_q = torch.rand(64, 29)
    tau = 0.01
    # both sides at the temperature: a student whose priced scores are the teacher's has nothing to
    # learn, and one whose scores are 1/tau too large (what raw-logit KL asked for) is penalised
    assert distillation_loss(teacher_q, teacher_q, tau).item() == pytest.approx(0.0, abs=1e-5)
    assert distillation_loss(teacher_q / tau, teacher_q, tau).item() > 0.5
    assert distillation_loss(torch.zeros(64, 29), teacher_q, tau).item() > 1.0


def synthetic_labels(states: torch.Tensor) -> torch.Tensor:
    """Teacher heads of a synthetic link: MCS a fails with P = sigmoid(a - 28 x0), delivers a/28."""
    a = torch.arange(N_ACTIONS, dtype=torch.float32)
    p_nack = torch.sigmoid(a[None] - 28 * states[:, :1])
    return torch.cat([(a / 28).expand(len(states), -1), p_nack], dim=1)


def test_kl_descent_drives_student_to_teacher_argmax_at_every_price():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    student = PricedQ((32, 32, 24))
    states = torch.rand(2048, OBS_DIM)
    states[:, PRICE] = 0.3
    labels = synthetic_labels(states)
    optimizer = torch.optim.Adam(student.parameters(), lr=3e-3)

    def loss_at(batch):
        teacher_q = priced_scores(labels[:, :N_ACTIONS], labels[:, N_ACTIONS:], batch[:, PRICE:])
        return distillation_loss(student(batch), teacher_q, 0.01), teacher_q

    def regret_at(price: float) -> float:
        probe = states.clone()
        probe[:, PRICE] = price
        _, teacher_q = loss_at(probe)
        chosen = student(probe).argmax(1)
        return (teacher_q.max(1).values - teacher_q.gather(1, chosen[:, None]).squeeze(1)).mean().item()

    prices = (-0.1, 0.0, 0.05, 1.0, 8.0)             # prices the rollouts never visited
    untrained = [regret_at(price) for price in prices]
    for _ in range(400):
        loss, _ = loss_at(resample_prices(states, 0.5, generator))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for price, before in zip(prices, untrained):
        assert regret_at(price) < 0.15 * before, price


def test_priced_score_trades_bits_against_nacks_by_the_price():
    net = PricedQ((8,))
    obs = torch.zeros(3, OBS_DIM)
    obs[:, PRICE] = torch.tensor([0.0, 1.0, 10.0])
    offered, nack_logit = net.heads(obs)
    p_nack = torch.sigmoid(nack_logit)
    np.testing.assert_allclose(net(obs).detach(), (offered * (1 - p_nack) - obs[:, PRICE:] * p_nack).detach())
    np.testing.assert_allclose(net(obs)[0].detach(), (offered * (1 - p_nack))[0].detach())   # throughput mode
    assert count_params(PricedQ((32, 32, 24))) <= STUDENT_MAX_PARAMS


def test_bandit_loss_regresses_only_the_taken_action_on_both_heads():
    torch.manual_seed(0)
    net = PricedQ((4,))
    obs = torch.rand(3, OBS_DIM)
    action = torch.tensor([0, 5, 28])
    offered, nack = torch.tensor([0.5, 1.0, 0.2]), torch.tensor([0.0, 0.0, 1.0])
    loss = bandit_loss(net, obs, action, offered, nack)
    loss.backward()
    touched = set(np.flatnonzero(net.body[-1].bias.grad.numpy()))
    assert touched <= {0, 5, 28, N_ACTIONS + 0, N_ACTIONS + 5, N_ACTIONS + 28}
    assert {N_ACTIONS + 0, N_ACTIONS + 5, N_ACTIONS + 28} <= touched     # every label moves its NACK logit
    head, logit = net.heads(obs)
    expected = (torch.nn.functional.huber_loss(head[[0, 1, 2], action], offered)
                + torch.nn.functional.binary_cross_entropy_with_logits(logit[[0, 1, 2], action], nack))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_priced_network_learns_a_constrained_bandit_from_the_replay_buffer():
    """Synthetic link: MCS a carries a/28 bits and fails with P = sigmoid(a - 28 x0); the learned
    heads' argmax must be near the Lagrangian optimum's value for a low and a high price (and far
    better than a fixed mid MCS)."""
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    n = 30_000
    buffer = ReplayBuffer(n)
    obs = rng.random((n, OBS_DIM)).astype(np.float32)
    action = rng.integers(0, N_ACTIONS, n)
    p_nack = 1 / (1 + np.exp(-(action - 28 * obs[:, 0])))
    nack = (rng.random(n) < p_nack).astype(np.float32)
    buffer.add(obs, action, (action / 28).astype(np.float32), nack)
    net = PricedQ((64, 64))
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    for _ in range(2000):
        loss = bandit_loss(net, *buffer.sample(256, rng))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    test = rng.random((400, OBS_DIM)).astype(np.float32)
    a = np.arange(N_ACTIONS)
    for price in (0.0, 2.0):
        test[:, PRICE] = price
        p = 1 / (1 + np.exp(-(a[None] - 28 * test[:, :1])))
        value = (1 - p) * a / 28 - price * p
        chosen = net(torch.from_numpy(test)).argmax(1).numpy()
        regret = value.max(1) - value[np.arange(len(test)), chosen]
        assert np.mean(regret) < 0.02 and np.mean(regret) < 0.2 * np.mean(value.max(1) - value[:, 14]), price


def test_replay_buffer_wraps_around():
    buffer = ReplayBuffer(5, obs_dim=2)
    buffer.add(np.arange(14, dtype=np.float32).reshape(7, 2), np.arange(7), np.zeros(7, np.float32),
               np.zeros(7, np.float32))
    assert buffer.size == 5
    assert sorted(buffer.action.tolist()) == [2, 3, 4, 5, 6]


def test_epsilon_decays_linearly_then_holds():
    cfg = DqnConfig(env_steps=100, eps_start=1.0, eps_end=0.1, eps_decay_fraction=0.5)
    assert epsilon_at(0, cfg) == 1.0
    assert epsilon_at(25, cfg) == pytest.approx(0.55)
    assert epsilon_at(50, cfg) == pytest.approx(0.1)
    assert epsilon_at(99, cfg) == pytest.approx(0.1)


@pytest.mark.parametrize("profile", ["smoke", "full"])
def test_profiles_respect_model_size_budgets(profile):
    cfg = load_profile(profile)
    student = PricedQ(cfg.distill.hidden)
    assert count_params(student) <= STUDENT_MAX_PARAMS
    assert count_params(student) * 32 < 1_000_000          # fp32 under 1 Mbit
    if profile == "full":
        assert count_params(PricedQ(cfg.teacher.hidden)) >= 100_000
    assert tuple(cfg.distill.hidden) in cfg.sizes          # the shipped size is a point of the ablation
    assert all(count_params(PricedQ(h)) <= 2 * STUDENT_MAX_PARAMS for h in cfg.sizes)
    assert cfg.distill.tau == 0.01 and cfg.distill.dagger_rounds >= 2
    assert describe(cfg.distill.hidden).startswith(f"MLP {OBS_DIM - 1}-")
    assert None in cfg.teacher.bler_targets and 0.1 in cfg.teacher.bler_targets


def test_unknown_profile_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown profile"):
        load_profile("huge")


def test_overrides_set_typed_fields_and_refuse_unknown_or_mistyped_ones():
    from ranpd.training.config import override

    cfg = override(load_profile("smoke"), ["teacher.env_steps=5000", "distill.hidden=[16, 16]",
                                           "evaluation.seeds=[1001, 1002]", "teacher.learning_rate=1",
                                           "sizes=[[8], [16, 16]]", "evaluation.n_ues=null"])
    assert cfg.teacher.env_steps == 5000 and cfg.distill.hidden == (16, 16)
    assert cfg.evaluation.seeds == (1001, 1002) and cfg.teacher.learning_rate == 1.0
    assert cfg.sizes == ((8,), (16, 16)) and cfg.evaluation.n_ues is None
    for bad, message in (("teacher.nope=1", "unknown setting"), ("teacher.env_steps=1.5", "takes a int"),
                         ("distill.hidden=3", "takes a list"), ("teacher=3", "takes a DqnConfig"),
                         ("teacher.env_steps", "section.field=value")):
        with pytest.raises(ValueError, match=message):
            override(load_profile("smoke"), [bad])
