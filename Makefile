# eventstream-operator
#
#   make demo    the one-command demo (local cluster, RabbitMQ, operator via Helm, events)
#   make test    everything the tests need is installed and started by this target
#
# Tools are installed into bin/ at the versions pinned below.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

BIN := $(CURDIR)/bin
CONTROLLER_GEN_VERSION := v0.23.0
CONTROLLER_GEN := $(BIN)/controller-gen-$(CONTROLLER_GEN_VERSION)
HELM_VERSION := v3.22.0
HELM := $(BIN)/helm-$(HELM_VERSION)

.PHONY: all
all: build

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRD and RBAC under config/.
	$(CONTROLLER_GEN) rbac:roleName=eventstream-operator crd:allowDangerousTypes=false paths="./api/..." paths="./controllers/..." \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	@if [ -d charts/eventstream-operator/crds ]; then cp config/crd/bases/*.yaml charts/eventstream-operator/crds/; fi

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code.
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

.PHONY: build
build: ## Build operator, bridge and eventctl into bin/.
	CGO_ENABLED=0 go build -trimpath -o $(BIN)/ ./cmd/...

##@ Test

.PHONY: test
test: ## Install and start what the tests need, then run unit and integration tests.
	hack/test.sh

$(CONTROLLER_GEN):
	GOBIN=$(BIN)/tmp-cg go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
	mv $(BIN)/tmp-cg/controller-gen $@ && rmdir $(BIN)/tmp-cg

$(HELM):
	GOBIN=$(BIN)/tmp-helm go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	mv $(BIN)/tmp-helm/helm $@ && rmdir $(BIN)/tmp-helm

.PHONY: help
help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'
