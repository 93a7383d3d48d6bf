//go:build !linux

package server

import (
	"net"
	"syscall"
)

// nonblockingConn: the writer pool's non-blocking writes need Linux; elsewhere every stream
// keeps a goroutine of its own.
func nonblockingConn(net.Conn) syscall.RawConn { return nil }

type vectorWriter struct{}

func newVectorWriter() *vectorWriter { return &vectorWriter{} }

func (s *connSink) writeNow(*vectorWriter, [][]byte) (more, ok bool) { return false, false }

func (s *connSink) writeFair([][]byte, chan struct{}) bool { return false }
