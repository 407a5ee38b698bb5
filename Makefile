# make test is what CI runs (.ci/run): it installs and starts what the tests
# need when missing (scripts/deps.sh), then runs every test with the race
# detector. Docker-backed tests fail rather than skip under it.
GO ?= go

.PHONY: test deps lint demo bench build

test: export SLIPWAY_TEST_POSTGRES ?= postgres://slipway:slipway@127.0.0.1:5432/slipway_test?sslmode=disable
test: deps
	SLIPWAY_REQUIRE_DOCKER=1 $(GO) test -race -count=1 -timeout 30m ./...
	# Without the race detector: the benchmarks as a smoke only (each runs
	# once; figures come from `make bench`), and the test of what -race
	# changes, the size of waiting goroutines' stacks.
	SLIPWAY_REQUIRE_DOCKER=1 $(GO) test -run 'TestWaitingJobsKeepSmallStacks' -bench . -benchtime 1x ./internal/...

deps:
	bash scripts/deps.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# demo is the README's first command: on a fresh Debian machine it installs
# and starts the Docker engine the container and SageMaker runs need.
demo:
	bash scripts/deps.sh --demo
	$(GO) run ./cmd/slipway demo

bench:
	$(GO) run ./cmd/slipway bench

build:
	$(GO) build -o bin/slipway ./cmd/slipway
