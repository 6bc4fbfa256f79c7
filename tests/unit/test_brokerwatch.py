"""When a broker's log is known lost: judged by comparing one check with the ones before it."""

from kafka import TopicPartition

from infra.kafka.brokerwatch import BrokerState, log_losses

A0, A1, B0 = TopicPartition("a", 0), TopicPartition("a", 1), TopicPartition("b", 0)


def test_a_growing_log_is_no_loss():
    assert log_losses({A0: 5, A1: 0}, {A0: 9, A1: 0, B0: 3}, {A0: 9}, {"a"}, ["a", "b"]) == []
    assert log_losses({}, {A0: 0}, {}, set(), ["a"]) == []  # the first check knows nothing to compare


def test_a_topic_gone_or_an_end_moved_back_is_a_loss_named_without_values():
    reasons = log_losses({A0: 50, B0: 7}, {A0: 2}, {}, {"a", "b"}, ["a"])
    assert reasons == ["topic b is gone", "a[0] ends at 2, earlier at 50"]


def test_an_end_below_the_groups_commit_is_a_loss():
    assert log_losses({}, {A0: 3}, {A0: 40}, {"a"}, ["a"]) == ["a[0] ends at 3, below the group's commit 40"]


def test_lag_is_summed_per_stage_for_health():
    state = BrokerState(reachable=True, lag={"intake.hotline": 3, "intake.grid": 4, "task-events": 0})
    stage_of = {"intake.hotline": "intake", "intake.grid": "intake", "task-events": "tasks"}
    assert state.as_json(stage_of)["lag"] == {"intake": 7, "tasks": 0}


def test_a_partition_is_stalled_when_records_wait_and_its_commit_does_not_move(monkeypatch):
    from infra.kafka import brokerwatch

    watch = brokerwatch.BrokerWatch("127.0.0.1:1", "g", [], {"a": "intake"}, tansu=False)
    clock = iter([100.0, 100.0, 130.0, 130.0, 170.0, 170.0, 170.0])
    monkeypatch.setattr(brokerwatch.time, "time", lambda: next(clock))
    monkeypatch.setattr(brokerwatch, "accepts_tcp", lambda servers: True)
    reads = iter([({A0: 50, A1: 9}, {A0: 10, A1: 9}, ["a"]),   # A0: 40 waiting at commit 10
                  ({A0: 60, A1: 9}, {A0: 10, A1: 9}, ["a"]),   # still at 10, 30 s on
                  ({A0: 70, A1: 9}, {A0: 10, A1: 9}, ["a"])])  # 70 s on
    monkeypatch.setattr(watch, "_read", lambda: next(reads))
    watch.check()
    watch.check()
    assert watch.stalled(60) == []
    watch.check()
    assert watch.stalled(60) == [(A0, 10)]  # A1 has nothing waiting: never stalled
