//go:build ignore

// Command pause is the pod sandbox ("pause") image of the local cluster (hack/cluster.sh).
// It holds the pod's namespaces open: it does nothing until SIGTERM or SIGINT, then exits 0.
// As PID 1 of a shared PID namespace it also reaps orphaned children so they never pile up
// as zombies. Build it statically: CGO_ENABLED=0 go build -o pause hack/cluster/pause/main.go
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			return
		}
		reapChildren()
	}
}

// reapChildren collects every child that has exited, without blocking.
func reapChildren() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
