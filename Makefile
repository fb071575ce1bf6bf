# posedistill developer entry points. Each target creates the virtual environment it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export OMP_NUM_THREADS ?= 2

.PHONY: venv test test-stress demo bench bench-dwpose bench-dwpose-scratch bench-okdhp bench-dkd bench-teachers mediapipe-env cascade default-model lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[train,dev]"
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m ruff check posedistill tests benchmarks
	$(PY) -m pytest -q tests

# The tests marked `stress` (timing, subprocesses, signals, worker processes, ports), 5 runs beside two CPU hogs;
# fails if any run fails (slow: several minutes per run on 2 cores). Extra pytest arguments: STRESS_ARGS="-x".
test-stress: $(STAMP)
	$(PY) tests/stress_run.py --runs 5 --hogs 2 -- $(STRESS_ARGS)

# The main job on its built-in default: synthetic whole-body data -> training -> evaluation.
demo: $(STAMP)
	$(PY) -m posedistill demo

# Speed and size benchmarks; each script prints a table and writes benchmarks/results/*.json.
SPEED_BENCHES := bench_data bench_synth bench_models bench_runtime bench_train
bench: $(STAMP)
	for b in $(SPEED_BENCHES); do $(PY) benchmarks/$$b.py || exit 1; done

# The methods' gains tables, three seeds each (long: tens of minutes on 2 CPU cores; docs/benchmarks.md).
# DWPose with the real PP-TinyPose teacher on LSPet: no KD, stage 1, stage 1 + 2 and the stage-2 ablation.
bench-dwpose: $(STAMP)
	$(PY) benchmarks/bench_dwpose_teacher.py --seeds 0 1 2 --jobs 2

# The earlier DWPose table with teachers trained from scratch here (RTMPose-m / -t, synthetic data and LSPet).
bench-dwpose-scratch: $(STAMP)
	$(PY) benchmarks/bench_dwpose.py --quick
	$(PY) benchmarks/bench_dwpose.py --quick --datasets synthetic --teacher-model rtmpose-t \
		--work-dir work_dirs/bench_dwpose_quick_tteacher --out benchmarks/results/dwpose_t-teacher.json

bench-okdhp: $(STAMP)
	$(PY) benchmarks/bench_okdhp.py --quick --datasets lspet synthetic --seeds 0 1 2 --epochs 5 --jobs 2

bench-dkd: $(STAMP)
	$(PY) benchmarks/bench_dkd.py --quick --seeds 0 1 2 --jobs 2

# The real teachers (PP-TinyPose 256x192 / 128x96 +-flip, MediaPipe Holistic when .venv-mediapipe exists, the default
# model) and person detectors on ../shared/data/coco_dev: AP with GT and detected boxes, box AP, ms at 2 threads.
bench-teachers: $(STAMP)
	$(PY) benchmarks/bench_teachers.py --threads 2 --mp-python $(MP_VENV)/bin/python

# MediaPipe Holistic, the black-box teacher of the cascade, lives in its own environment: mediapipe 0.10.21 (the
# last release with its models inside the wheel, so it runs offline) needs numpy < 2 (docs/label.md).
MP_VENV ?= .venv-mediapipe
MP_STAMP := $(MP_VENV)/.installed
$(MP_STAMP): pyproject.toml
	test -x $(MP_VENV)/bin/python || $(PYTHON) -m venv $(MP_VENV)
	$(MP_VENV)/bin/python -m pip install -q --upgrade pip
	$(MP_VENV)/bin/python -m pip install -q -e ".[mediapipe]"
	touch $(MP_STAMP)

mediapipe-env: $(MP_STAMP)

# The real-image cascade: MediaPipe labels LSPet -> whole-body teacher -> DWPose RTMPose-t -> evaluation vs
# MediaPipe (about an hour on 2 CPU cores; docs/benchmarks.md). Its student was the default model before
# `make default-model`; `bench_cascade.py --ship` still writes it to models/rtmpose-t_wholebody-cascade.
cascade: $(STAMP) $(MP_STAMP)
	$(PY) benchmarks/bench_cascade.py --mp-python $(MP_VENV)/bin/python

# The shipped default model (models/rtmpose-nano_wholebody): PP-TinyPose + MediaPipe label 6,667 real people ->
# rtmpose-nano from RTMDet-nano's backbone, stage 1 + 2 -> julito / LSPet evaluation -> models/ (about 2 hours on
# 2 CPU cores; resumable: run it again after an interruption). GPU=1: the GPU recipe on one CUDA GPU; the labels
# must then be in work_dirs/default_model/labels already (made here, carried there), as that machine has no MediaPipe.
ifeq ($(GPU),1)
default-model: $(STAMP)
	$(PY) benchmarks/default_model.py --ship --gpu
else
default-model: $(STAMP) $(MP_STAMP)
	$(PY) benchmarks/default_model.py --ship
endif

lint: $(STAMP)
	$(PY) -m ruff check posedistill tests benchmarks
	$(PY) -m ruff format --check posedistill tests benchmarks

clean:
	rm -rf $(VENV) $(MP_VENV) .pytest_cache .ruff_cache
