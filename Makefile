# Strata: `make setup`, then `make demo` and `make test`.
SWIFT ?= swift
BUILD_FLAGS ?=

.PHONY: setup build release test demo bench lint clean

setup:
	Scripts/setup.sh

build:
	$(SWIFT) build $(BUILD_FLAGS)

# The shipped binary: release, with the Swift runtime linked in (faster start, fewer shared libraries).
release:
	$(SWIFT) build -c release --product snapctl --static-swift-stdlib $(BUILD_FLAGS)

# Every test: unit tests on the file store, and integration tests against a private SeaweedFS
# that the tests start on loopback and stop.
test:
	$(SWIFT) build --build-tests $(BUILD_FLAGS)
	$(SWIFT) test --skip-build --disable-swift-testing $(BUILD_FLAGS)

demo: release
	Scripts/demo.sh

bench: release
	Scripts/bench.sh

lint:
	swift-format lint --recursive --configuration .swift-format Sources Tests
	hadolint Infra/Dockerfile Infra/Dockerfile.runtime
	cfn-lint Infra/cloudformation/strata.yaml

clean:
	rm -rf .build
