#!/usr/bin/env python3
"""TensorBoard fixture for outputs_tests, written by the tensorboard package itself.

    python make_tensorboard_fixture.py            # writes scalars.tfevents + scalars.json here
    python make_tensorboard_fixture.py --check F  # loads F with TensorBoard's EventAccumulator

The events file is written through tensorboard.summary.writer.event_file_writer.EventFileWriter
(the writer torch.utils.tensorboard.SummaryWriter uses), with the clock fixed so the file is
reproducible: its first record is the Event {wall_time, file_version "brain.Event:2"} the
writer emits itself, then one Event {wall_time, step, Summary{Value{tag, simple_value}}} per
scalar, exactly what SummaryWriter.add_scalar builds, and one SessionLog START event (what a
resumed run writes). scalars.json lists the same inputs so the C++ test can replay them through
smol::TensorBoardWriter and demand byte-identical output, and read the fixture with
smol::read_tensorboard_scalars and demand the exact float32 values.

--check prints, for a file our writer produced, the scalars as TensorBoard's own loader sees
them (CI runs no Python; the byte-identity test is the CI guard).
"""
import argparse
import json
import math
import os
import shutil
import struct
import sys
import tempfile

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer import event_file_writer

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER_WALL_TIME = 1700000000.25

# (tag, value, step, wall_time): negative, tiny, float-denormal, huge, zero, non-finite
# values; steps 0 (a proto3 default, left out of the encoding), negative, small and beyond
# 32 bits;
# several tags; a UTF-8 tag; wall times with and without an exact binary fraction.
SCALARS = [
    ("train/loss", 2.3456789, 0, 1700000000.5),
    ("train/learning_rate", 0.0, 0, 1700000000.5),
    ("train/grad_norm", -0.0, 0, 1700000000.5),
    ("train/loss", 1.75, 1, 1700000001.123456),
    ("train/learning_rate", 2e-4, 1, 1700000001.123456),
    ("train/grad_norm", 12345.678, 1, 1700000001.123456),
    ("train/loss", -3.5, 50, 1700000002.0),
    ("train/tiny", 1e-30, 50, 1700000002.0),
    ("train/denormal", 1.4e-45, 50, 1700000002.0),
    ("train/huge", 3.0e38, 50, 1700000002.0),
    ("train/near_max", 3.4028235e38, 50, 1700000002.0),  # rounds down to FLT_MAX
    ("train/overflow", 1e39, 50, 1700000002.0),  # rounds to +inf
    ("train/negative_step", 0.125, -7, 1700000002.0),  # a 10-byte varint
    ("train/nan", float("nan"), 50, 1700000002.0),
    ("train/neg_inf", float("-inf"), 50, 1700000002.0),
    ("eval/eval_loss", 0.987654321, 100, 1700000100.75),
    ("eval/eval_token_accuracy", 0.5, 100, 1700000100.75),
    ("métrique/précision", 0.25, 100, 1700000100.75),
    ("train/loss", 0.5, 2**40, 1700000200.0),
]
RESTART = (51, 1700000300.5)  # SessionLog START at step 51, wall time
SCALARS_AFTER_RESTART = [("train/loss", 1.0, 51, 1700000301.0)]


def float32_bits(value):
    """The bits protobuf stores for simple_value (its double → float conversion: out of range
    rounds to ±inf, as a C++ static_cast<float> does)."""
    stored = summary_pb2.Summary.Value(simple_value=value).simple_value
    return struct.unpack("<I", struct.pack("<f", stored))[0]


def json_number(value):
    """JSON has no NaN or infinity: those are written as strings."""
    return value if math.isfinite(value) else repr(value)


def scalar_event(tag, value, step, wall_time):
    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])
    return event_pb2.Event(wall_time=wall_time, step=step, summary=summary)


def make_fixture():
    logdir = tempfile.mkdtemp()
    real_time = event_file_writer.time.time
    event_file_writer.time.time = lambda: HEADER_WALL_TIME  # the header event's wall time
    try:
        writer = event_file_writer.EventFileWriter(logdir)
    finally:
        event_file_writer.time.time = real_time
    for tag, value, step, wall_time in SCALARS:
        writer.add_event(scalar_event(tag, value, step, wall_time))
    step, wall_time = RESTART
    writer.add_event(event_pb2.Event(wall_time=wall_time, step=step,
                                     session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START)))
    for tag, value, step, wall_time in SCALARS_AFTER_RESTART:
        writer.add_event(scalar_event(tag, value, step, wall_time))
    writer.close()
    (name,) = os.listdir(logdir)
    shutil.copyfile(os.path.join(logdir, name), os.path.join(HERE, "scalars.tfevents"))
    shutil.rmtree(logdir)

    def entry(tag, value, step, wall_time):
        return {"tag": tag, "value": json_number(value), "float32_bits": float32_bits(value),
                "step": step, "wall_time": wall_time}

    fixture = {
        "header_wall_time": HEADER_WALL_TIME,
        "scalars": [entry(*s) for s in SCALARS],
        "restart": {"step": RESTART[0], "wall_time": RESTART[1]},
        "scalars_after_restart": [entry(*s) for s in SCALARS_AFTER_RESTART],
    }
    with open(os.path.join(HERE, "scalars.json"), "w", encoding="utf-8") as out:
        json.dump(fixture, out, indent=1, ensure_ascii=False)
        out.write("\n")


def check(path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(path, size_guidance={"scalars": 0})  # 0: keep every event
    accumulator.Reload()
    print(f"file_version {accumulator.file_version}")
    for tag in sorted(accumulator.Tags()["scalars"]):
        for event in accumulator.Scalars(tag):
            print(f"{tag}\tstep {event.step}\tvalue {event.value!r}\twall_time {event.wall_time!r}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", metavar="FILE", help="print the scalars TensorBoard reads")
    args = parser.parse_args()
    if args.check:
        check(args.check)
    else:
        make_fixture()


if __name__ == "__main__":
    sys.exit(main())
