# unimed5m: `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SAMPLE ?= data/sample
OUT ?= build

# Offline by default: no hub downloads, no telemetry.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: help install lint-imports bench-scoring bench-scale build-stage1 build-stage2 build-stage3 train-stage1 sample test test-browser test-slow bench clean

help: ## list the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed ## create .venv and install the package with its test tools

sample: install ## write the bundled sample tree (each source's real layout, tiny) into data/sample
	$(BIN)/unimed sample --out $(SAMPLE)

build-stage1: sample ## build stage 1 from the sample tree (alignment on tiny DEMO weights) into build/stage1
	$(BIN)/unimed demo-models --out $(OUT)/demo-models
	$(BIN)/unimed build --recipe stage1 --sources-root $(SAMPLE) --out $(OUT) --align --models-dir $(OUT)/demo-models
	@echo "query it:  $(BIN)/unimed query $(OUT)/stage1 \"SELECT modality, avg(align_final) FROM kept GROUP BY ALL\""
	@echo "re-decide: $(BIN)/unimed rethreshold $(OUT)/stage1 --keep-fraction 0.6   (no model runs)"
	$(BIN)/unimed report $(OUT)/stage1

build-stage2: build-stage1 ## stage 2 from build/stage1 + the sample: HQ subset, CAG on tiny DEMO weights, DCOT
	$(BIN)/unimed build --recipe stage2 --sources-root $(SAMPLE) --out $(OUT) --models-dir $(OUT)/demo-models --hq-build $(OUT)/stage1
	$(BIN)/unimed query $(OUT)/stage2 "SELECT task_family, status, count(*) AS n FROM records GROUP BY ALL ORDER BY ALL"
	$(BIN)/unimed query $(OUT)/stage2 "SELECT reason, count(*) AS n FROM rejected WHERE reason LIKE 'cag_%' GROUP BY ALL ORDER BY n DESC"
	@echo "CAG ran on DEMO weights (tiny random MedGemma): its replies break the rules, so every CAG row is rejected"
	@echo "train:     $(BIN)/unimed train --stage 2 --build $(OUT)/stage2 --out $(OUT)/train-stage2 --steps 300"

build-stage3: sample ## build stage 3 (the five interleaved tasks) from the sample tree into build/stage3
	$(BIN)/unimed build --recipe stage3 --sources-root $(SAMPLE) --out $(OUT)
	@echo "query it:  $(BIN)/unimed query $(OUT)/stage3 \"SELECT main_task_type, source, count(*) FROM kept GROUP BY ALL\""

train-stage1: build-stage1 ## train the tiny reference model 300 steps of stage 1 on build/stage1; per-family losses
	$(BIN)/unimed train --stage 1 --build $(OUT)/stage1 --out $(OUT)/train-stage1 --steps 300

test: install ## the test suite (what CI runs): import contracts, then pytest
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -m "not slow and not gpu and not browser" -q

test-browser: install ## browser checks: the audit app and the report page in headless Chromium (apt-get install chromium chromium-driver)
	$(BIN)/python -m pytest -m "browser" -q

test-slow: install ## slow checks (large decode sweeps, long kill/rerun loops)
	$(BIN)/python -m pytest -m "slow" -q

# Sizes of `make bench` (issue 13's where they fit ~25 min on 2 cores; the output says what was used).
BENCH_IMAGES ?= 3000
BENCH_MIXED_IMAGES ?= 1000
BENCH_P2_IMAGES ?= 1000
BENCH_P3_IMAGES ?= 300 3000
BENCH_MANIFEST_ROWS ?= 5600000
BENCH_INDEX_SAMPLES ?= 1000000
BENCH_RETHRESHOLD_IMAGES ?= 1000
BENCH_DECODE_IMAGES ?= 300

bench: install ## issue 13's goals P1 P1b P2 P3 P4 P5 P7 (P1 with its time breakdown); decoding; scoring; near duplicates
	$(BIN)/python -m pipeline.bench.build --images $(BENCH_IMAGES) --mixed-images $(BENCH_MIXED_IMAGES) \
		--p2-images $(BENCH_P2_IMAGES) --p3-images $(BENCH_P3_IMAGES)
	$(BIN)/python -m pipeline.bench.decode --images $(BENCH_DECODE_IMAGES)
	$(BIN)/python -m pipeline.bench.manifest --rows $(BENCH_MANIFEST_ROWS)
	$(BIN)/python -m pipeline.bench.loader --index-samples $(BENCH_INDEX_SAMPLES)
	$(BIN)/python -m pipeline.bench.rethreshold --images $(BENCH_RETHRESHOLD_IMAGES)
	$(BIN)/python -m pipeline.bench.scoring
	$(BIN)/python -m pipeline.bench.near_duplicates

bench-scoring: install ## alignment scoring pairs/s per model (tiny CPU models; MedSigLIP-448-sized on a GPU)
	$(BIN)/python -m pipeline.bench.scoring

# Sizes of `make bench-scale` (issue 26: 40k and 400k generated records; at 400k, tens of minutes and ~5 GB of disk).
SCALE_SMALL ?= 40000
SCALE_LARGE ?= 400000

bench-scale: install ## build, no-op rerun, export, release, report, audit sample at SCALE_SMALL and SCALE_LARGE records: wall, driver RSS, ratios, shards
	$(BIN)/python -m pipeline.bench.scale --sizes $(SCALE_SMALL) $(SCALE_LARGE)

clean: ## remove build outputs and the sample tree (keeps .venv)
	rm -rf $(OUT) $(SAMPLE) bench-out
