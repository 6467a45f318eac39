// Package idle wraps a connection so that every Read and every Write gets
// its own deadline: an inactive peer is cut off, an active one never is
// (RFC 5321 §4.5.3.2 and RFC 1939 §3 time out inactivity, not sessions).
package idle

import (
	"net"
	"sync/atomic"
	"time"
)

// Conn is a net.Conn whose reads and writes each get a fresh deadline of
// Timeout. SetTimeout changes it (e.g. from the login timeout to the idle
// timeout). A zero timeout means no deadline.
//
// One goroutine may read while another writes: the read and write deadlines
// are separate. Deadlines set directly with SetDeadline, SetReadDeadline or
// SetWriteDeadline are replaced by the next Read or Write.
type Conn struct {
	net.Conn
	timeout atomic.Int64 // nanoseconds; <= 0: no deadline
	// readSet and writeSet remember that a deadline may be in force, so a
	// zero timeout clears it once instead of at every call.
	readSet, writeSet atomic.Bool
}

// New wraps c.
func New(c net.Conn, timeout time.Duration) *Conn {
	ic := &Conn{Conn: c}
	ic.timeout.Store(int64(timeout))
	return ic
}

// SetTimeout changes the per-operation timeout for the next Read/Write. It is
// safe to call at any time, also while a Read or Write is blocked (that one
// keeps the deadline it started with).
func (c *Conn) SetTimeout(d time.Duration) { c.timeout.Store(int64(d)) }

// Timeout returns the current per-operation timeout.
func (c *Conn) Timeout() time.Duration { return time.Duration(c.timeout.Load()) }

// Unwrap returns the wrapped connection.
func (c *Conn) Unwrap() net.Conn { return c.Conn }

// Read reads with a deadline of Timeout from now.
func (c *Conn) Read(b []byte) (int, error) {
	if d := c.timeout.Load(); d > 0 {
		if err := c.Conn.SetReadDeadline(time.Now().Add(time.Duration(d))); err != nil {
			return 0, err
		}
		c.readSet.Store(true)
	} else if c.readSet.Swap(false) {
		if err := c.Conn.SetReadDeadline(time.Time{}); err != nil {
			return 0, err
		}
	}
	return c.Conn.Read(b)
}

// Write writes with a deadline of Timeout from now. The deadline covers the
// whole Write: a peer that does not read for Timeout is cut off.
func (c *Conn) Write(b []byte) (int, error) {
	if d := c.timeout.Load(); d > 0 {
		if err := c.Conn.SetWriteDeadline(time.Now().Add(time.Duration(d))); err != nil {
			return 0, err
		}
		c.writeSet.Store(true)
	} else if c.writeSet.Swap(false) {
		if err := c.Conn.SetWriteDeadline(time.Time{}); err != nil {
			return 0, err
		}
	}
	return c.Conn.Write(b)
}

// SetDeadline sets both deadlines on the wrapped connection until the next
// Read or Write replaces them.
func (c *Conn) SetDeadline(t time.Time) error {
	c.readSet.Store(true)
	c.writeSet.Store(true)
	return c.Conn.SetDeadline(t)
}

// SetReadDeadline sets the read deadline until the next Read replaces it.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.readSet.Store(true)
	return c.Conn.SetReadDeadline(t)
}

// SetWriteDeadline sets the write deadline until the next Write replaces it.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.writeSet.Store(true)
	return c.Conn.SetWriteDeadline(t)
}
