package apptest

import (
	"io"
	"os/exec"
	"syscall"
	"time"

	"github.com/eventstream-operator/eventstream-operator/test/clitest"
)

// ProcessLog collects a process's output and shows it in the test log when the test fails.
func ProcessLog(t T, name string) io.Writer {
	t.Helper()
	b := &clitest.Output{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s output:\n%s", name, b.String())
		}
	})
	return b
}

// StartProcess starts cmd in its own process group and stops the group when the test ends
// (SIGTERM, SIGKILL after 15 s): servers such as `next start` leave no child behind.
func StartProcess(t T, name string, cmd *exec.Cmd) {
	t.Helper()
	out := ProcessLog(t, name)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
}
