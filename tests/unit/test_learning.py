"""The learning simulation's rounds: rulings and returns teach the next round's model."""

from __future__ import annotations

from pipeline.dispatch_eval import Decision, Truth
from pipeline.learning import Learner, Ticket, all_rounds, examples_from_rulings, promotion, simulate
from pipeline.textmodel import NO_ITEM


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
    test = [Ticket(truth(100 + n, kind, unit), unseen=kind != "路灯") for n, (kind, unit) in enumerate(kinds.items())]

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
    assert [r.test_unseen_auto_share for r in rounds] == [0.0, 0.0, 1.0, 1.0]


def test_a_wrong_unit_is_returned_and_teaches_the_right_one():
    stream = [Ticket(truth(n, "医保", "ybj"), unseen=True) for n in range(6)]

    rounds = simulate(stream, [Ticket(truth(99, "医保", "ybj"), unseen=True)], memorising({}, guess="cgj"), rounds=2)

    first, second = rounds[1], rounds[2]
    assert first.returned == 3 and first.right_unit_of_auto == 0.0 and first.waited == 0
    assert (first.sent, first.sent_right, second.sent, second.sent_right) == (3, 0, 3, 3)
    assert second.returned == 0 and second.right_unit_of_auto == 1.0 and second.model_examples == 3
    assert rounds[0].test_right_unit_of_auto == 0.0 and second.test_right_unit_of_auto == 1.0


def test_the_right_unit_rate_is_also_given_for_the_units_two_readers_agreed_on():
    # The reply named zjj for two 物业 tickets that the model (and the readers, elsewhere) sends to cgj.
    stream = [Ticket(truth(n, "物业", "zjj" if n < 2 else "cgj"), unseen=False, agreed=n >= 2) for n in range(6)]
    test = [Ticket(truth(90, "物业", "zjj"), unseen=False, agreed=False),
            Ticket(truth(91, "物业", "cgj"), unseen=False)]
    learner = memorising({"物业": "cgj"})

    first = simulate(stream, test, learner, rounds=1)[1]

    assert (first.sent, first.sent_right, first.agreed_sent, first.agreed_sent_right) == (6, 4, 4, 4)
    assert first.right_unit_of_auto == round(4 / 6, 4) and first.returned == 2
    assert first.test_right_unit_of_auto == 0.5 and first.test_right_unit_of_agreed_auto == 1.0


def test_the_rounds_add_up():
    stream = [Ticket(truth(n, "医保", "ybj"), unseen=True, agreed=n % 2 == 0) for n in range(6)]

    total = all_rounds(simulate(stream, [], memorising({}, guess="cgj"), rounds=2))

    # round 1: all three sent to cgj and returned; round 2: the three learnt, sent to ybj
    assert total == {"tickets": 6, "sent": 6, "right_unit_of_sent": 0.5, "agreed_sent": 3,
                     "agreed_right_unit_of_sent": round(1 / 3, 4), "first_waited": 0, "last_waited": 0}


def ruling(kind: str, item_no: str = "", units: tuple[str, ...] = (), at: str = "2026-12-01T01:00:00+00:00") -> dict:
    return {"kind": kind, "ruling_id": "r", "incident_id": "i", "title": "路灯", "text": "路灯不亮", "text_sha256": "0" * 64,
            "item_no": item_no, "units": list(units), "wrong_unit": "zjj" if kind == "return" else "",
            "model_version": "m1", "decided_by": "op", "decided_at": at}


def test_each_ruling_teaches_the_unit_it_names(sample_book):
    found = examples_from_rulings([
        ruling("dispatch", "CJ-029"),  # the item's primary unit
        ruling("dispatch", "CJ-029", ("zjj", "cgj")),  # the operator's own choice, first is primary
        ruling("not_for_dispatch"),
        ruling("return", "CJ-029", ("cgj",)),  # returned by zjj, routed on to cgj
        ruling("return"),  # returned, not routed again yet: teaches nothing the head can learn
    ], sample_book)
    assert [(e.unit, e.source) for _, e in found] == [("cgj", "ruling"), ("zjj", "ruling"), (NO_ITEM, "ruling"),
                                                       ("cgj", "return")]


def figures_of(sent_share: float, right: float, at_95: float | None) -> dict:
    return {"sent_share": sent_share, "right_unit_of_sent": right,
            "sent_at_95_right_unit": None if at_95 is None else {"sent_share": at_95, "threshold": 0.7}}


def test_a_candidate_is_promoted_only_when_it_sends_more_at_95_or_is_right_more_at_no_cost():
    assert promotion(figures_of(0.3, 0.9, 0.2), figures_of(0.3, 0.9, 0.25))[0]
    assert promotion(figures_of(0.3, 0.9, None), figures_of(0.3, 0.93, None))[0]
    assert not promotion(figures_of(0.3, 0.9, None), figures_of(0.25, 0.95, None))[0]  # right more, but sends less
    promoted, why = promotion(figures_of(0.3, 0.96, 0.3), figures_of(0.4, 0.9, 0.1))
    assert not promoted and "10.0%" in why and "30.0%" in why
