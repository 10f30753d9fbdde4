# The two commands: `make demo` and `make test`. Each installs what it needs.
SWIFT ?= swift
export PATH := $(PATH):/opt/swift/usr/bin

.PHONY: deps build release test test-unit fuzz demo demo-commands bench bench-core bench-reconciler bench-serve bench-remote bench-audit bench-ui bench-traffic bench-faults bench-artifacts bench-containers bench-fleet template check-template web check-web clean

deps:
	@scripts/install-deps.sh

build: deps
	$(SWIFT) build

test: deps check-template check-web
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --parallel

# The fast tier: logic, repositories and the rewind binary, with libgit2 and
# git only (no Prometheus, Alertmanager, HAProxy, sshd, nginx, browser or
# PyPI; python3 writes the tar layers of the unpacking tests). About a minute after the build on 2 cores. `make test` runs these too.
UNIT_LIBRARIES := ^(GitKitTests|DeployModelTests|RollbackTests|FuzzTargetsTests)\.|^ArtifactsTests\.TarExtractorTests|^AuditTests\.AuditOracleTests|^RemoteTests\.RemoteURLTests
UNIT_RECONCILER := ^ReconcilerTests\.(CoreTests|BranchWatchTests|DeployMachineTests|RolloutControllerTests|RolloutTests|BreachTests|GateTests|ReduceTests|NotifierTests|ReleaseOutcomeTests|PolicyTests|RollbackEffectsTests|StatusCacheTests|StopTests|SupervisionTests|ExecPlatformTests)
UNIT_CLI := ^RewindCLITests\.(QuickLineTests|PackageManifestTests|SourceShapeTests|ConcurrencyTests|DiffTests|PinsFileTests|ReleasesTests|RevertTests|ValidateWorktreeTests|BrokenTipTests|ConventionsTests)
UNIT_SERVER := ^ServerTests\.(EventWatcherTests|GitHookTests|GitThreadTests|WebSecurityTests|RoutesTests)
UNIT_TESTS := $(UNIT_LIBRARIES)|$(UNIT_RECONCILER)|$(UNIT_CLI)|$(UNIT_SERVER)

test-unit:
	@scripts/install-deps.sh --unit
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --parallel --filter '$(UNIT_TESTS)'

# libFuzzer on every parser of outside input, FUZZ_SECONDS each (default 60);
# fails on a crash, leak or timeout. `make test` runs the corpora only.
fuzz: deps
	scripts/fuzz.sh

demo: deps
	$(SWIFT) build
	scripts/demo.sh "$$($(SWIFT) build --show-bin-path)/rewind"

# The rollback commands on their own (revert, rollback, pin, check), no reconciler.
demo-commands: deps
	$(SWIFT) build
	scripts/demo-commands.sh "$$($(SWIFT) build --show-bin-path)/rewind"

# An optimised binary with the Swift runtime linked in: what you would ship.
release: deps
	$(SWIFT) build -c release --static-swift-stdlib
	@echo "$$($(SWIFT) build -c release --show-bin-path)/rewind (and rewind-daemon beside it: install both)"

bench: release
	Benchmarks/run.sh "$$($(SWIFT) build -c release --show-bin-path)/rewind"
	python3 Benchmarks/reconciler.py "$$($(SWIFT) build -c release --show-bin-path)/rewind"
	python3 Benchmarks/serve.py "$$($(SWIFT) build -c release --show-bin-path)/rewind"
	python3 Benchmarks/remote.py "$$($(SWIFT) build -c release --show-bin-path)/rewind"
	python3 Benchmarks/audit.py "$$($(SWIFT) build -c release --show-bin-path)/rewind"
	python3 Benchmarks/ui.py "$$($(SWIFT) build -c release --show-bin-path)/rewind"
	python3 Benchmarks/traffic.py "$$($(SWIFT) build -c release --show-bin-path)/rewind"
	python3 Benchmarks/faults.py "$$($(SWIFT) build -c release --show-bin-path)/rewind"
	python3 Benchmarks/artifacts.py "$$($(SWIFT) build -c release --show-bin-path)/rewind"

# A git host that stalls or goes away (Benchmarks/faults.py: rollback against a stalled host, CPU while
# stalled, RSS over 5,000 syncs up and down, rewind serve's RSS over an hour; --minutes shortens that).
bench-faults: release
	python3 Benchmarks/faults.py "$$($(SWIFT) build -c release --show-bin-path)/rewind"

# Pulling from an OCI registry (Benchmarks/artifacts.py: rewind pull of a 50 MB artifact against skopeo copy).
bench-artifacts: release
	python3 Benchmarks/artifacts.py "$$($(SWIFT) build -c release --show-bin-path)/rewind"

# The container platform alone (Benchmarks/containers.py: rollback and deploy against podman by hand, idle with 50 containers).
bench-containers: release
	python3 Benchmarks/containers.py "$$($(SWIFT) build -c release --show-bin-path)/rewind"

# A fleet of 10 hosts in network namespaces (Benchmarks/fleet.py: rollback commit -> every host healthy, with and
# without the push webhook; idle cost per host). Needs root.
bench-fleet: release
	python3 Benchmarks/fleet.py "$$($(SWIFT) build -c release --show-bin-path)/rewind"

# Progressive delivery alone (Benchmarks/traffic.py: canary abort, blue-green switch back, failed requests under load).
bench-traffic: release
	python3 Benchmarks/traffic.py "$$($(SWIFT) build -c release --show-bin-path)/rewind"

# Governance (Benchmarks/governance.py: escalation -> PagerDuty and email accepted; an API write with roles
# against an earlier build, BEFORE=path to its rewind).
bench-governance: release
	python3 Benchmarks/governance.py "$$($(SWIFT) build -c release --show-bin-path)/rewind" $(if $(BEFORE),--before "$(BEFORE)")

# The web UI alone (Benchmarks/ui.py: overview and app pages, rollback to browser).
bench-ui: release
	python3 Benchmarks/ui.py "$$($(SWIFT) build -c release --show-bin-path)/rewind"

# rewind audit and rewind incident alone (Benchmarks/audit.py).
bench-audit: release
	python3 Benchmarks/audit.py "$$($(SWIFT) build -c release --show-bin-path)/rewind"

# Remote repositories alone (Benchmarks/remote.py: webhook, no-op fetch, initial mirror).
bench-remote: release
	python3 Benchmarks/remote.py "$$($(SWIFT) build -c release --show-bin-path)/rewind"

# rewind serve's benchmarks alone (Benchmarks/serve.py).
bench-serve: release
	python3 Benchmarks/serve.py "$$($(SWIFT) build -c release --show-bin-path)/rewind"

# The reconciler's benchmarks alone (Benchmarks/reconciler.py).
bench-reconciler: release
	python3 Benchmarks/reconciler.py "$$($(SWIFT) build -c release --show-bin-path)/rewind"

# This build against an earlier rewind binary (BEFORE=path) and the git CLI:
# start-up, revert ~1,000 back, and the reconciler benchmarks (Benchmarks/core.sh).
bench-core: release
	Benchmarks/core.sh "$$($(SWIFT) build -c release --show-bin-path)/rewind" "$(BEFORE)"

# Regenerate the copy of deploy-repo-template/ that `rewind init` carries.
template:
	python3 scripts/embed-template.py

check-template:
	@python3 scripts/embed-template.py --check || { echo "deploy-repo-template/ changed: run 'make template'" >&2; exit 1; }

# Regenerate the copy of Sources/Server/web/ (the web UI's CSS and script) that rewind serve carries.
web:
	python3 scripts/embed-web.py

check-web:
	@python3 scripts/embed-web.py --check || { echo "Sources/Server/web/ changed: run 'make web'" >&2; exit 1; }

clean:
	rm -rf .build
