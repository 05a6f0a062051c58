"""Tensor-level checks of the training algorithms (no simulator needed)."""
import numpy as np
import pytest
import torch

from ranpd.training.config import DqnConfig, load_profile
from ranpd.training.distill import distillation_loss
from ranpd.training.dqn import ReplayBuffer, bandit_q_loss, epsilon_at, penalised_reward
from ranpd.training.networks import STUDENT_MAX_PARAMS, count_params, describe, mlp

torch.set_num_threads(1)


def test_kl_loss_is_zero_only_when_student_matches_sharpened_teacher():
    teacher_q = torch.rand(64, 29)
    tau = 0.01
    matching = teacher_q / tau                       # softmax(z) == softmax(q / tau)
    assert distillation_loss(matching, teacher_q, tau).item() == pytest.approx(0.0, abs=1e-5)
    assert distillation_loss(torch.zeros(64, 29), teacher_q, tau).item() > 1.0


def test_kl_descent_drives_student_to_teacher_argmax():
    torch.manual_seed(0)
    teacher = mlp((64, 64))
    student = mlp((32, 32, 32))
    states = torch.rand(2048, 18)
    with torch.no_grad():
        targets = teacher(states)
    optimizer = torch.optim.Adam(student.parameters(), lr=3e-3)
    first = distillation_loss(student(states), targets, 0.01).item()
    for _ in range(300):
        loss = distillation_loss(student(states), targets, 0.01)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.2 * first
    agreement = (student(states).argmax(1) == targets.argmax(1)).float().mean().item()
    assert agreement > 0.9


def test_bandit_loss_regresses_only_the_taken_action():
    q = torch.zeros(3, 29, requires_grad=True)
    action = torch.tensor([0, 5, 28])
    reward = torch.tensor([0.5, 1.0, 0.0])
    loss = bandit_q_loss(q, action, reward)
    loss.backward()
    touched = q.grad.abs() > 0
    assert touched.sum().item() == 2                  # the 0-error entry has zero gradient
    assert touched[0, 0] and touched[1, 5]
    assert loss.item() == pytest.approx((0.5 * 0.25 + 0.5 * 1.0) / 3)


def test_nack_penalty_subtracts_lambda_from_the_target_of_each_nack_only():
    reward = np.array([0.0, 0.4, 0.0, 0.9], np.float32)     # a NACK delivers no bits: reward 0
    ack = np.array([False, True, False, True])
    target = penalised_reward(reward, ack, nack_penalty=0.35)
    assert target.dtype == np.float32
    np.testing.assert_allclose(target, [-0.35, 0.4, -0.35, 0.9], rtol=0, atol=1e-7)
    # the loss regresses Q(s, a_taken) on exactly that target
    q = torch.zeros(4, 29)
    action = torch.tensor([3, 7, 11, 28])
    assert bandit_q_loss(q, action, torch.from_numpy(target)).item() == pytest.approx(
        np.mean(0.5 * target.astype(np.float64) ** 2), rel=1e-6)


def test_zero_nack_penalty_keeps_the_throughput_target_and_is_the_default():
    reward = np.random.default_rng(0).random(100).astype(np.float32)
    ack = reward > 0.5
    assert penalised_reward(reward, ack, 0.0) is reward
    assert DqnConfig().nack_penalty == 0.0
    assert load_profile("full").teacher.nack_penalty == 0.0
    assert load_profile("smoke").teacher.nack_penalty == 0.0
    bler10 = load_profile("full-bler10")
    assert bler10.teacher.nack_penalty > 0 and bler10.scratch.nack_penalty == bler10.teacher.nack_penalty


def test_q_network_learns_a_bandit_from_the_replay_buffer():
    """A synthetic contextual bandit: the best action is 3 * round(first feature * 9)."""
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    buffer = ReplayBuffer(20_000)
    obs = rng.random((20_000, 18)).astype(np.float32)
    action = rng.integers(0, 29, 20_000)
    best = np.round(obs[:, 0] * 9).astype(int) * 3
    reward = np.exp(-0.5 * ((action - best) / 2.0) ** 2).astype(np.float32)
    buffer.add(obs, action, reward)
    assert buffer.size == 20_000
    net = mlp((64, 64))
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    for _ in range(1500):
        batch = buffer.sample(256, rng)
        loss = bandit_q_loss(net(batch[0]), batch[1], batch[2])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    test = rng.random((500, 18)).astype(np.float32)
    chosen = net(torch.from_numpy(test)).argmax(1).numpy()
    error = np.abs(chosen - np.round(test[:, 0] * 9) * 3)
    assert np.mean(error <= 2) > 0.8


def test_replay_buffer_wraps_around():
    buffer = ReplayBuffer(5, obs_dim=2)
    buffer.add(np.arange(14, dtype=np.float32).reshape(7, 2), np.arange(7), np.zeros(7, np.float32))
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
    student = mlp(cfg.distill.hidden)
    assert count_params(student) <= STUDENT_MAX_PARAMS
    assert count_params(student) * 32 < 1_000_000          # fp32 under 1 Mbit
    if profile == "full":
        assert count_params(mlp(cfg.teacher.hidden)) >= 100_000
    assert cfg.scratch.hidden == cfg.distill.hidden
    assert cfg.distill.tau == 0.01 and cfg.distill.dagger_rounds >= 2
    assert describe(cfg.distill.hidden).startswith("MLP 18-")


def test_unknown_profile_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown profile"):
        load_profile("huge")
