// Package version holds the version of the project's binaries (operator, bridge, eventctl),
// printed by their --version flag. Builds inject it; it is the image tag for image builds:
//
//	go build -ldflags "-X github.com/eventstream-operator/eventstream-operator/internal/version.Version=v0.2.0" ./cmd/...
//
// The Makefile (build), hack/image.sh and the Dockerfile set it.
package version

// Version is the version string, "dev" when the build did not inject one.
var Version = "dev"
