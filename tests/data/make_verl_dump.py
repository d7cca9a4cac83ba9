"""Writes tests/data/verl_dump/: a small verl rollout dump in verl 0.9.1's format, by hand.

verl's trainer writes one `{step}.jsonl` per step into trainer.rollout_data_dir (and
trainer.validation_data_dir), one JSON line per rollout (verl/trainer/ppo/v1/trainer_base.py,
_write_generations): input, output, gts, score, step, then extra keys (V1: uid =
"{group uid}_{session}_{index}"). `input` is the prompt decoded with skip_special_tokens=True,
so a qwen-boxed prompt reads "system\\n...\\nuser\\n{question}\\n...\\nassistant\\n".

The problems are MATH-500's (../shared/data/math500/test.jsonl). Step 1 is in the V1 format
(with uid); step 2 has no uid (older trainers) and one prompt whose trailing newline was lost
(to exercise the whitespace-insensitive match). Re-run to regenerate: python tests/data/make_verl_dump.py
"""

import json
from pathlib import Path

HERE = Path(__file__).parent
MATH500 = HERE.parents[1].parent / "shared" / "data" / "math500" / "test.jsonl"


def decoded_qwen_prompt(question: str) -> str:
    # what verl's tokenizer.decode(prompt_ids, skip_special_tokens=True) gives for qwen-boxed
    return ("system\nYou are a helpful assistant.\nuser\n" + question
            + "\nPlease reason step by step, and put your final answer within \\boxed{}.\nassistant\n")


def main() -> None:
    rows = [json.loads(line) for line in MATH500.open()]
    train = [r for r in rows if r["level"] in (1, 2, 3, 4)][:20]  # the test's training set
    out = HERE / "verl_dump"
    (out / "rollouts").mkdir(parents=True, exist_ok=True)
    (out / "validation").mkdir(parents=True, exist_ok=True)

    def rec(r, correct, step, uid=None, prompt=None):
        answer = r["answer"] if correct else "0.123"
        d = {"input": prompt or decoded_qwen_prompt(r["problem"]),
             "output": f"Some reasoning.\nSo the answer is $\\boxed{{{answer}}}$.",
             "gts": r["answer"], "score": 1.0 if correct else 0.0, "step": step}
        if uid is not None:
            d["uid"] = uid
        return d

    # step 1, V1 format: 3 groups of 4; rewards 2/4, 1/4, 3/4
    step1 = []
    for g, (r, pattern) in enumerate(zip(train[:3], ([1, 0, 1, 0], [0, 0, 1, 0], [1, 1, 0, 1]))):
        for s, c in enumerate(pattern):
            step1.append(rec(r, c, 1, uid=f"9f{g}c1e2a-4b7d-4c1e-9a2f-0000000000{g:02d}_{s}_0"))
    # step 2, no uid: 2 groups of 4; the second prompt lost its trailing newline
    step2 = [rec(train[3], c, 2) for c in (1, 1, 1, 0)]
    step2 += [rec(train[4], c, 2, prompt=decoded_qwen_prompt(train[4]["problem"]).rstrip("\n"))
              for c in (0, 1, 0, 0)]
    # validation before training (step 0), 2 problems x 2 samples, V1 extra keys
    val0 = []
    for g, r in enumerate(rows[:2]):
        for s, c in enumerate((1, 0) if g == 0 else (0, 0)):
            d = rec(r, c, 0, uid=f"a1b2c3d4-0000-4000-8000-0000000000{g:02d}_{s}_0")
            d["acc"] = d["score"]
            val0.append(d)
    for path, recs in ((out / "rollouts" / "1.jsonl", step1), (out / "rollouts" / "2.jsonl", step2),
                       (out / "validation" / "0.jsonl", val0)):
        with path.open("w") as f:
            for d in recs:
                f.write(json.dumps(d, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
