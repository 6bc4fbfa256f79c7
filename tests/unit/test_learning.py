"""The learning simulation's rounds: rulings and returns teach the next round's model."""

from __future__ import annotations

from pipeline.dispatch_eval import Decision, Truth
from pipeline.learning import Learner, Ticket, simulate


def truth(n: int, kind: str, unit: str) -> Truth:
    return Truth(f"t{n}", f"{kind} {n}", kind, unit, None, None)


def memorising(start: dict[str, str], guess: str | None = None) -> Learner:
    """Sends a text's kind to the unit it learnt for it; an unknown kind waits, or with `guess` is sent there."""

    def learn(examples):
        return start | {e.text: e.unit for e in examples}

    def decide(model, truths):
        return [Decision(None, model[t.text], 1.0, True) if t.text in model
                else Decision(None, guess, 0.9, True) if guess else Decision(None, None, 0.1, False)
                for t in truths]

    return Learner(learn, decide)


def test_rulings_move_a_kind_from_the_queue_to_automatic_dispatch():
    kinds = {"路灯": "cgj", "医保": "ybj", "学位": "jyj"}
    stream = [Ticket(truth(n, kind, unit), unseen=kind != "路灯")
              for n in range(30) for kind, unit in [list(kinds.items())[n % 3]]]
    test = [truth(100 + n, kind, unit) for n, (kind, unit) in enumerate(kinds.items())]

    rounds = simulate(stream, test, memorising({"路灯": "cgj"}), rounds=3)

    assert [r.round for r in rounds] == [0, 1, 2, 3]
    assert rounds[0].tickets == 0 and rounds[0].test_auto_share == round(1 / 3, 4)
    # The unseen kinds wait for the whole first round (the model is learnt between rounds), then never.
    assert [r.waited for r in rounds[1:]] == [6, 0, 0]
    assert [r.model_examples for r in rounds[1:]] == [0, 6, 6]
    assert rounds[1].unseen_auto_share == 0.0 and rounds[2].unseen_auto_share == 1.0
    assert all(r.right_unit_of_auto == 1.0 for r in rounds[1:])
    assert rounds[1].test_auto_share == round(1 / 3, 4)  # the model in force during round 1: the first
    assert rounds[2].test_auto_share == 1.0 and rounds[2].test_right_unit_of_auto == 1.0


def test_a_wrong_unit_is_returned_and_teaches_the_right_one():
    stream = [Ticket(truth(n, "医保", "ybj"), unseen=True) for n in range(6)]

    rounds = simulate(stream, [truth(99, "医保", "ybj")], memorising({}, guess="cgj"), rounds=2)

    first, second = rounds[1], rounds[2]
    assert first.returned == 3 and first.right_unit_of_auto == 0.0 and first.waited == 0
    assert second.returned == 0 and second.right_unit_of_auto == 1.0 and second.model_examples == 3
    assert rounds[0].test_right_unit_of_auto == 0.0 and second.test_right_unit_of_auto == 1.0
