//go:build !linux

package server

// newCloseWatcher returns the portable watcher: a reading goroutine per stream.
func newCloseWatcher(<-chan struct{}) closeWatcher { return goroutineWatcher{} }
