"""Oversampling with rollout replay (paper §4.1, Algorithm 1).

For each prompt: draw `oversample_n` rollouts (paper 64), then keep a group of
`rollouts_per_prompt` (8) with exactly `n_pos` positives (1) and the rest negatives. When the
draw has too few positives, replay earlier positives of that prompt from a per-prompt buffer
of its `capacity` most recent positives (5); each buffered rollout is replayed at most
`max_replay` times (paper 2; the authors' code allows 3). A prompt that still lacks positives
is filtered before the update. Advantages are computed by GRPO on the kept group, i.e. after
replay and downsampling. The reward history keeps the mean of the *original* draw.

Choices of ours (the algorithm box did not survive the paper's text extraction):
  - positives are rewards > 0; which positives / negatives are kept is a seeded random choice;
  - the buffer is read before this step's positives are added (only *earlier* positives are
    replayed), and replays take the most recent buffered positives first;
  - a draw with fewer than `n - n_pos` negatives (at 64 draws and n = 8: a pass rate above
    57/64) fills the missing negatives with extra positives of the same draw, and the log
    says so (`extra_pos`); at the paper's 64 draws this touches only very easy prompts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class ReplayBuffer:
    """Per prompt: its most recent positive responses, each with the times it was replayed."""

    capacity: int = 5
    max_replay: int = 2
    items: dict[str, list[list]] = field(default_factory=dict)  # prompt_id -> [[token_ids, reward, replays], ...] oldest first

    def add(self, prompt_id: str, responses: list[list[int]], rewards: list[float]) -> None:
        """Buffer `responses` (positives of this step) as the prompt's most recent ones."""
        if not responses:
            return
        buf = self.items.setdefault(prompt_id, [])
        buf.extend([list(r), float(x), 0] for r, x in zip(responses, rewards))
        del buf[: max(0, len(buf) - self.capacity)]

    def replay(self, prompt_id: str, k: int) -> list[tuple[list[int], float]]:
        """Up to `k` buffered (response, reward) of the prompt, most recent first, each replayed
        fewer than `max_replay` times so far; their counts go up by one."""
        out = []
        for entry in reversed(self.items.get(prompt_id, [])):
            if len(out) == k:
                break
            if entry[2] < self.max_replay:
                entry[2] += 1
                out.append((list(entry[0]), entry[1]))
        return out

    def available(self, prompt_id: str) -> int:
        """Buffered positives of the prompt that may still be replayed."""
        return sum(e[2] < self.max_replay for e in self.items.get(prompt_id, []))

    def replays(self) -> int:
        """Total replays so far of the rollouts still in the buffer."""
        return sum(e[2] for buf in self.items.values() for e in buf)

    def state(self) -> dict:
        return {"capacity": self.capacity, "max_replay": self.max_replay, "items": self.items}

    @classmethod
    def from_state(cls, state: dict) -> "ReplayBuffer":
        return cls(state["capacity"], state["max_replay"], {k: [list(e) for e in v] for k, v in state["items"].items()})


@dataclass
class Downsampled:
    """What happened to one prompt's draw."""

    responses: list[list[int]]  # the kept group (empty when filtered)
    rewards: list[float]
    drawn: int  # rollouts in the original draw
    drawn_pos: int  # positives among them
    buffered: int  # positives of this prompt in the buffer before the draw (capacity = full)
    replayed: int  # positives taken from the buffer
    extra_pos: int  # positives used in place of missing negatives
    kept: bool  # False: filtered (no positive in the draw or the buffer)


def downsample(prompt_id: str, responses: list[list[int]], rewards: list[float], n: int, n_pos: int,
               buffer: ReplayBuffer, rng: random.Random) -> Downsampled:
    """Algorithm 1 for one prompt: a group of `n` with exactly `n_pos` positives (replayed from
    `buffer` when the draw has too few), then this draw's positives join the buffer."""
    if not 0 < n_pos < n:
        raise ValueError(f"grpo.n_pos={n_pos}: need 0 < n_pos < rollouts_per_prompt ({n})")
    pos = [i for i, r in enumerate(rewards) if r > 0]
    neg = [i for i, r in enumerate(rewards) if r <= 0]
    rng.shuffle(pos)
    rng.shuffle(neg)
    if len(rewards) < n:
        raise ValueError(f"grpo.oversample_n={len(rewards)} is smaller than the group size {n}")
    buffered = len(buffer.items.get(prompt_id, []))
    short = n_pos - min(n_pos, len(pos))
    enough = short <= buffer.available(prompt_id)
    replayed = buffer.replay(prompt_id, short) if short and enough else []  # nothing replays for a filtered prompt
    buffer.add(prompt_id, [responses[i] for i in pos], [rewards[i] for i in pos])  # after the replay
    info = dict(drawn=len(rewards), drawn_pos=len(pos), buffered=buffered, replayed=len(replayed))
    if not enough:
        return Downsampled([], [], extra_pos=0, kept=False, **info)
    n_neg = n - n_pos
    missing_neg = n_neg - min(n_neg, len(neg))
    chosen = pos[:n_pos] + pos[n_pos: n_pos + missing_neg] + neg[:n_neg]  # indices into the draw
    group = [(responses[i], rewards[i]) for i in chosen] + replayed
    return Downsampled([r for r, _ in group], [x for _, x in group], extra_pos=missing_neg, kept=True, **info)
