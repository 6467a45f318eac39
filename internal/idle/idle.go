// Package idle wraps a connection so that every Read and every Write gets
// its own deadline: an inactive peer is cut off, an active one never is
// (RFC 5321 §4.5.3.2 and RFC 1939 §3 time out inactivity, not sessions).
package idle

import (
	"net"
	"time"
)

// Conn is a net.Conn whose reads and writes each get a fresh deadline of
// Timeout. SetTimeout changes it (e.g. from the login timeout to the idle
// timeout). A zero timeout means no deadline.
type Conn struct {
	net.Conn
}

// New wraps c.
func New(c net.Conn, timeout time.Duration) *Conn { panic("unimplemented") }

// SetTimeout changes the per-operation timeout for the next Read/Write.
func (c *Conn) SetTimeout(d time.Duration) { panic("unimplemented") }
