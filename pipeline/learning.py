"""Learning from the operations centre, simulated on real messages (`cityops eval learning`).

A city starts with a model that has never seen some kinds of report. Tickets arrive in rounds; the
model in force decides each one (pipeline.dispatch_eval.Decision). A ticket that waits is ruled by
an operator, and one sent to the wrong unit is returned by it (退单 职能不符) and closes under the
right one: both become examples of the right unit for the ticket's text. After each round a new
model is learnt from the starting data plus every example so far, and it decides the next round.

Each round reports what the hotline feels (the share sent automatically, how many of those reached
the right unit, how many waited for an operator), the same for the kinds the starting model never
saw, and the model's figures on a fixed test set that neither teaches nor is ruled: so a better
round is the model learning, not easier tickets. The right-unit rate is also given for the tickets
whose unit two readers agreed on alone: a unit named by the government's reply is a looser truth (the
unit that answered, which is not always the one the duty list names), and it caps any model's rate
below 95% (the shipped model's is ~86%, `cityops eval dispatch`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from pipeline.dispatch_eval import NONE, Decision, Truth, unit_of
from pipeline.dutylists import DutyBook
from pipeline.rates import rate
from pipeline.textmodel import NO_ITEM, TopClassModel, document, near_duplicate_groups, with_unit_head

Model = TypeVar("Model")


@dataclass(frozen=True)
class Ticket:
    truth: Truth  # its right unit is what the simulated operator rules, and what a return ends in
    unseen: bool  # of a kind the starting model was kept from
    agreed: bool = True  # its unit is two readers' (else the one the government's reply named)


@dataclass(frozen=True)
class Example:
    """What a ruling or a return teaches: this text is for this unit."""

    title: str
    text: str
    unit: str
    source: str  # "ruling" (an operator dispatched a waiting ticket) or "return" (a department sent it back)


@dataclass(frozen=True)
class Round:
    round: int
    model_examples: int  # rulings and returns the model in force learnt from
    tickets: int
    auto_share: float | None
    right_unit_of_auto: float | None
    sent: int
    sent_right: int
    agreed_sent: int  # of the tickets whose unit two readers agreed on
    agreed_sent_right: int
    waited: int  # tickets this round that went to the operator queue
    returned: int  # tickets sent automatically to the wrong unit (each returned, then re-routed)
    unseen_tickets: int
    unseen_auto_share: float | None
    unseen_right_unit_of_auto: float | None
    test_auto_share: float | None
    test_right_unit_of_auto: float | None
    test_right_unit_of_agreed_auto: float | None
    test_unseen_auto_share: float | None  # the test set's tickets of the kept-from units
    test_unseen_right_unit_of_auto: float | None


@dataclass
class Learner(Generic[Model]):
    """`learn(examples)` gives the model learnt from the starting data plus the examples;
    `decide(model, truths)` a Decision per truth, as the dispatcher would."""

    learn: Callable[[list[Example]], Model]
    decide: Callable[[Model, Sequence[Truth]], list[Decision]]


def simulate(stream: Sequence[Ticket], test: Sequence[Ticket], learner: Learner, *, rounds: int) -> list[Round]:
    """The stream in `rounds` equal parts, a model learnt after each (round 0: the test set under the
    starting model, before any ticket)."""
    examples: list[Example] = []
    model = learner.learn(examples)
    size = -(-len(stream) // rounds)
    on_test = _on_test(learner, model, test)  # the model in force's figures: round 0's, and the first round's
    report = [_round(0, 0, [], [], on_test)]
    for n in range(1, rounds + 1):
        tickets = list(stream[(n - 1) * size:n * size])
        if not tickets:
            break
        learnt_from = len(examples)
        decisions = learner.decide(model, [t.truth for t in tickets])
        for ticket, decision in zip(tickets, decisions, strict=True):
            if not decision.sent:
                examples.append(_example(ticket, "ruling"))
            elif decision.unit != ticket.truth.unit:
                examples.append(_example(ticket, "return"))
        report.append(_round(n, learnt_from, tickets, decisions, on_test))
        model = learner.learn(examples)
        on_test = _on_test(learner, model, test)
    return report


def all_rounds(played: Sequence[Round]) -> dict:
    """The rounds' tickets together: how many went out, how many of those reached the right unit (and of
    the tickets whose unit two readers agreed on), and the queue of the first round and of the last."""
    rounds = [r for r in played if r.tickets]
    sent, right = sum(r.sent for r in rounds), sum(r.sent_right for r in rounds)
    agreed, agreed_right = sum(r.agreed_sent for r in rounds), sum(r.agreed_sent_right for r in rounds)
    return {"tickets": sum(r.tickets for r in rounds), "sent": sent, "right_unit_of_sent": rate(right, sent),
            "agreed_sent": agreed, "agreed_right_unit_of_sent": rate(agreed_right, agreed),
            "first_waited": rounds[0].waited if rounds else None, "last_waited": rounds[-1].waited if rounds else None}


def _example(ticket: Ticket, source: str) -> Example:
    return Example(ticket.truth.title, ticket.truth.text, ticket.truth.unit, source)


def _counts(pairs: Sequence[tuple[Ticket, Decision]]) -> tuple[int, int, int]:
    """(tickets, sent automatically, sent to the right unit)."""
    sent = [(t, d) for t, d in pairs if d.sent]
    return len(pairs), len(sent), sum(d.unit == t.truth.unit for t, d in sent)


def _on_test(learner: Learner, model, test: Sequence[Ticket]) -> dict[str, float | None]:
    """The test set's figures under `model` (Round's test_ fields)."""
    pairs = list(zip(test, learner.decide(model, [t.truth for t in test]), strict=True))
    n, sent, right = _counts(pairs)
    _, agreed_sent, agreed_right = _counts([(t, d) for t, d in pairs if t.agreed])
    unseen, unseen_sent, unseen_right = _counts([(t, d) for t, d in pairs if t.unseen])
    return {"test_auto_share": rate(sent, n), "test_right_unit_of_auto": rate(right, sent),
            "test_right_unit_of_agreed_auto": rate(agreed_right, agreed_sent),
            "test_unseen_auto_share": rate(unseen_sent, unseen),
            "test_unseen_right_unit_of_auto": rate(unseen_right, unseen_sent)}


def _round(n: int, model_examples: int, tickets: Sequence[Ticket], decisions: Sequence[Decision],
           test: dict[str, float | None]) -> Round:
    pairs = list(zip(tickets, decisions, strict=True))
    count, sent, right = _counts(pairs)
    _, agreed_sent, agreed_right = _counts([(t, d) for t, d in pairs if t.agreed])
    unseen, unseen_sent, unseen_right = _counts([(t, d) for t, d in pairs if t.unseen])
    return Round(round=n, model_examples=model_examples, tickets=count, auto_share=rate(sent, count),
                 right_unit_of_auto=rate(right, sent), sent=sent, sent_right=right, agreed_sent=agreed_sent,
                 agreed_sent_right=agreed_right, waited=count - sent, returned=sent - right, unseen_tickets=unseen,
                 unseen_auto_share=rate(unseen_sent, unseen), unseen_right_unit_of_auto=rate(unseen_right, unseen_sent),
                 **test)


# The kinds the starting model is kept from: two of the labelled classes, and two classes the
# labelled data never had, whose messages the silver set holds.
HELD_BACK_CLASSES = ("卫生计生", "交通运输", "政法", "民政")


def held_back_units(book: DutyBook, classes: Sequence[str] = HELD_BACK_CLASSES) -> set[str]:
    """The units every one of whose items is of those classes: a model kept from the classes never
    saw a report for them (a unit that also serves other classes was seen through those)."""
    by_unit: dict[str, set[str]] = {}
    for item in book.dutylist.items:
        by_unit.setdefault(item.primary_unit, set()).add(item.top_class)
    return {unit for unit, tops in by_unit.items() if tops <= set(classes)}


@dataclass(frozen=True)
class Experiment:
    """The real messages, split: `history` teaches the starting model with `base` (the list's own words,
    the no-item examples), `stream` arrives in rounds, `test` only measures."""

    base: list[tuple[str, str, str]]
    history: list[tuple[str, str, str]]
    stream: list[Ticket]
    test: list[Ticket]
    unseen_units: set[str]


def split_experiment(truths: Sequence[Truth], base: Sequence[tuple[str, str, str]], unseen_units: set[str], *,
                     reply_named: frozenset[str] = frozenset(), seed: int = 0, test_share: float = 0.25,
                     history_share: float = 0.25) -> Experiment:
    """Messages whose unit is known, shuffled once (`seed`) with near-duplicates kept together: the first
    `test_share` to test, the next `history_share` to the starting model (a unit it is kept from: to the
    stream instead), the rest to the stream. `base` rows of the kept-from units are dropped.
    `reply_named`: the keys of the truths whose unit a reply named (not two readers)."""
    groups = near_duplicate_groups([{"title": t.title, "text": t.text} for t in truths])
    order = list(dict.fromkeys(groups))
    random.Random(seed).shuffle(order)
    rank = {group: n for n, group in enumerate(order)}
    ranked = sorted(range(len(truths)), key=lambda i: (rank[groups[i]], i))
    test_end = round(len(ranked) * test_share)
    history_end = test_end + round(len(ranked) * history_share)
    def ticket(t: Truth) -> Ticket:
        return Ticket(t, unseen=t.unit in unseen_units, agreed=t.key not in reply_named)

    test = [ticket(truths[i]) for i in ranked[:test_end]]
    history, stream = [], []
    for position, i in enumerate(ranked[test_end:], start=test_end):
        t = truths[i]
        if position < history_end and t.unit not in unseen_units:
            history.append((t.title, t.text, t.unit))
        else:
            stream.append(ticket(t))
    random.Random(seed + 1).shuffle(stream)  # the kept-from units' tickets arrive throughout
    return Experiment([row for row in base if row[2] not in unseen_units], history, stream, test, unseen_units)


def unit_head_learner(class_model: TopClassModel, experiment: Experiment,
                      decide: Callable[[TopClassModel, Sequence[Truth]], list[Decision]]) -> Learner:
    """Each round's model: the class model, with a unit head learnt from the starting rows and every
    ruling and return so far (the class model is learnt once: the unit head is what gates dispatch)."""
    start = [(document(t, x), u) for t, x, u in [*experiment.base, *experiment.history]]

    def learn(examples: list[Example]) -> TopClassModel:
        return with_unit_head(class_model, [*start, *((document(e.title, e.text), e.unit) for e in examples)])

    return Learner(learn, decide)


# ------------------------------------------------------------------------- rulings as examples

def examples_from_rulings(rulings: Iterable[dict], book: DutyBook) -> list[tuple[str, Example]]:
    """(decided_at, example) of each ruling row (GET /operator/rulings) that says which unit a text is
    for: an operator's dispatch (the first of its units, else its item's primary unit), a close (no item:
    not for dispatch), a return once it has been routed again (where it went next). A return not routed
    yet says only which unit is wrong, which the unit head (one class per unit) cannot learn from."""
    found = []
    for r in rulings:
        if r["kind"] == "not_for_dispatch":
            unit = NO_ITEM
        elif r["units"]:
            unit = r["units"][0]
        else:
            unit = unit_of(book, r["item_no"]) if r["item_no"] else None
        if unit and unit != NONE:
            found.append((r["decided_at"], Example(r["title"], r["text"], unit, "return" if r["kind"] == "return"
                                                   else "ruling")))
    return found


def as_truths(examples: Sequence[Example]) -> list[Truth]:
    return [Truth(f"ruling-{n}", e.title, e.text, e.unit, None, None) for n, e in enumerate(examples)]


def promotion(in_force: dict, candidate: dict) -> tuple[bool, str]:
    """Whether a candidate replaces the model in force, from both models' `dispatch_eval.figures` on the
    same later rulings: it must send more at ≥ 95% right unit, or, sending as much there, be right more
    often at the threshold in force without sending less."""
    def at_95(f: dict) -> float:
        return (f["sent_at_95_right_unit"] or {}).get("sent_share") or 0.0

    now, new = at_95(in_force), at_95(candidate)
    said = f"at ≥ 95% right unit it sends {new:.1%} of the later rulings' tickets, the model in force {now:.1%}"
    if new > now:
        return True, said
    right_now, right_new = in_force["right_unit_of_sent"] or 0.0, candidate["right_unit_of_sent"] or 0.0
    if new == now and right_new > right_now and (candidate["sent_share"] or 0.0) >= (in_force["sent_share"] or 0.0):
        return True, f"{said}; at the threshold in force it is right {right_new:.1%} of the time, not {right_now:.1%}"
    return False, f"{said}; at the threshold in force right {right_new:.1%} (in force {right_now:.1%}), sending " \
                  f"{candidate['sent_share'] or 0:.1%} (in force {in_force['sent_share'] or 0:.1%})"
