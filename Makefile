# eventstream-operator
#
#   make demo    the one-command demo (local cluster, RabbitMQ, operator via Helm, events)
#   make test    everything the tests need is installed and started by this target
#
# Tools are installed into bin/ at the versions pinned below.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

BIN := $(CURDIR)/bin
# Pinned in hack/cluster/tools.sh; built once per machine, cached outside the clone.
CONTROLLER_GEN = $(shell hack/tool.sh controller-gen)
HELM = $(shell hack/tool.sh helm)

.PHONY: all
all: build

##@ Development

.PHONY: manifests
manifests: ## Generate the CRD and RBAC under config/.
	$(CONTROLLER_GEN) rbac:roleName=eventstream-operator crd:allowDangerousTypes=false paths="./api/..." paths="./controllers/..." \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	cp config/crd/bases/*.yaml charts/eventstream-operator/crds/
	cp config/rbac/role.yaml charts/eventstream-operator/files/role.yaml

.PHONY: generate
generate: ## Generate deepcopy code.
	$(CONTROLLER_GEN) object paths="./api/..."

.PHONY: fmt
fmt:
	gofmt -w $$(git ls-files '*.go')

.PHONY: lint
lint: ## gofmt and go vet.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	go vet ./...

.PHONY: verify
verify: manifests generate ## Regenerate and fail if the tree changed; tidy go.mod.
	go mod tidy
	@if [ -n "$$(git status --porcelain -- api config charts go.mod go.sum)" ]; then \
		echo "generated files are out of date; run make manifests generate and commit:"; \
		git status --porcelain -- api config charts go.mod go.sum; git --no-pager diff --stat; exit 1; fi

##@ Build

# VERSION is what `operator|bridge|eventctl --version` print (internal/version): the chart's
# appVersion (hack/version.sh), the one place the version is written. hack/image.sh sets it to
# the image tag instead, so a binary in an image names the tag it was published as.
VERSION ?= $(shell hack/version.sh)
VERSION_LDFLAGS = -X github.com/eventstream-operator/eventstream-operator/internal/version.Version=$(VERSION)

.PHONY: build
build: ## Build operator, bridge and eventctl into bin/ (version: VERSION, default git describe).
	CGO_ENABLED=0 go build -trimpath -ldflags "$(VERSION_LDFLAGS)" -o $(BIN)/ ./cmd/...

# IMAGE names the image `make image` pushes; by default a new tag in the local cluster's registry.
IMAGE ?= 127.0.0.1:25000/eventstream-operator:dev-$(shell date +%s)

.PHONY: image
image: ## Build the image without Docker (hack/image.sh) and push it to IMAGE; prints the ref with digest.
	hack/image.sh $(IMAGE)

KUBECTL ?= $(shell command -v kubectl || echo $(BIN)/k8s/kubectl)

# The image config/default installs (its images: entry, the chart's appVersion as the tag).
RELEASE_IMAGE = ghcr.io/eventstream-operator/eventstream-operator:$(shell hack/version.sh)
# DIST_IMAGE, when set, replaces RELEASE_IMAGE in install.yaml: the operator's image and the
# bridges' (BRIDGE_IMAGE), e.g. make dist DIST_IMAGE=registry.example.com/evs:1.2.3
DIST_IMAGE ?=
DIST_DIR ?= dist

.PHONY: dist
dist: ## Render config/default into $(DIST_DIR)/install.yaml (image: DIST_IMAGE): kubectl apply --server-side -f dist/install.yaml.
	mkdir -p $(DIST_DIR)
	$(KUBECTL) kustomize config/default > $(DIST_DIR)/install.yaml.tmp
	@n=$$(grep -c -F '$(RELEASE_IMAGE)' $(DIST_DIR)/install.yaml.tmp || true); if [ "$$n" != 2 ]; then \
		echo "dist: want $(RELEASE_IMAGE) twice in the rendering (operator image, BRIDGE_IMAGE), found $$n" >&2; exit 1; fi
	@if [ -n "$(DIST_IMAGE)" ]; then sed -i 's|$(RELEASE_IMAGE)|$(DIST_IMAGE)|g' $(DIST_DIR)/install.yaml.tmp; fi
	mv $(DIST_DIR)/install.yaml.tmp $(DIST_DIR)/install.yaml

##@ Local cluster and demo

.PHONY: cluster-up
cluster-up: ## Start the local single-node cluster (hack/cluster.sh up); then eval "$(hack/cluster.sh env)".
	hack/cluster.sh up

.PHONY: cluster-down
cluster-down: ## Stop the local cluster and remove its runtime state.
	hack/cluster.sh down

.PHONY: demo
demo: ## The one-command demo: cluster, RabbitMQ, operator via Helm, sample EventStream, live events. Ctrl-C cleans up.
	hack/demo.sh up

.PHONY: demo-down
demo-down: ## Remove everything a demo started (when it was not stopped with Ctrl-C).
	hack/demo.sh down

##@ Test

.PHONY: helm
helm: ## Install the pinned helm into bin/.
	@echo $(HELM)

.PHONY: test
test: ## Install and start what the tests need, then run unit and integration tests.
	hack/test.sh

.PHONY: test-e2e
test-e2e: ## End-to-end tests on the local cluster with a dedicated RabbitMQ node (hack/e2e.sh).
	hack/e2e.sh

.PHONY: test-chaos
test-chaos: ## Fault-injection suite, full profile (hack/chaos.sh, ~15 min): prints the figures of docs/reliability.md.
	hack/chaos.sh

.PHONY: bench
bench: ## Measure bridge and operator against the machine's limit; writes docs/performance.md.
	hack/bench.sh $(BENCH_FLAGS)

.PHONY: help
help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'
