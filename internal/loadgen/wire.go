package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

const bufSize = 64 << 10

// deadlineConn gives every read and write its own timeout (the per I/O
// step limit) and fails once ctx has ended. The deadline is set before
// ctx is checked: a cancellation that lands in between has its past
// deadline (set by watch) win.
type deadlineConn struct {
	net.Conn
	ctx     context.Context
	timeout time.Duration
}

func (d *deadlineConn) Read(p []byte) (int, error) {
	_ = d.Conn.SetReadDeadline(time.Now().Add(d.timeout))
	if err := d.ctx.Err(); err != nil {
		return 0, err
	}
	return d.Conn.Read(p)
}

func (d *deadlineConn) Write(p []byte) (int, error) {
	_ = d.Conn.SetWriteDeadline(time.Now().Add(d.timeout))
	if err := d.ctx.Err(); err != nil {
		return 0, err
	}
	return d.Conn.Write(p)
}

// wire is one client connection with 64 KiB buffers that survive redials.
type wire struct {
	raw     net.Conn
	conn    net.Conn // what r and w use: the deadlineConn or TLS over it
	r       *bufio.Reader
	w       *bufio.Writer
	unwatch func() bool
}

func newWire() *wire {
	return &wire{r: bufio.NewReaderSize(nil, bufSize), w: bufio.NewWriterSize(nil, bufSize)}
}

// dial connects; a failure is a dialError.
func (w *wire) dial(ctx context.Context, addr string, timeout time.Duration) error {
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return dialError{err}
	}
	w.raw = c
	// Cancelling ctx unblocks any read or write in progress at once.
	w.unwatch = context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	w.use(&deadlineConn{Conn: c, ctx: ctx, timeout: timeout})
	return nil
}

// use switches the buffers to c (after a dial, or to TLS after STARTTLS).
func (w *wire) use(c net.Conn) {
	w.conn = c
	w.r.Reset(c)
	w.w.Reset(c)
}

func (w *wire) close() {
	if w.raw == nil {
		return
	}
	w.unwatch()
	_ = w.raw.Close()
	w.raw, w.conn = nil, nil
	w.r.Reset(nil)
	w.w.Reset(nil)
}

// command writes one command line and flushes it.
func (w *wire) command(parts ...string) error {
	for _, p := range parts {
		_, _ = w.w.WriteString(p)
	}
	_, _ = w.w.WriteString("\r\n")
	return w.w.Flush()
}

// readLine returns the next line without copying it (valid until the next
// read). A line longer than the buffer is cut to its first bufSize octets.
func (w *wire) readLine() ([]byte, error) {
	line, err := w.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		// Keep the start for the caller; the rest is drained here.
		head := append([]byte(nil), line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			_, err = w.r.ReadSlice('\n')
		}
		return head, err
	}
	return line, err
}

// dialError marks a failure to connect, counted as "dial".
type dialError struct{ err error }

func (e dialError) Error() string { return fmt.Sprintf("dial: %v", e.err) }
func (e dialError) Unwrap() error { return e.err }

// tlsError is a failed TLS handshake, counted as "tls".
type tlsError struct{ err error }

func (e tlsError) Error() string { return fmt.Sprintf("tls handshake: %v", e.err) }
func (e tlsError) Unwrap() error { return e.err }

// replyError is an unexpected protocol reply, counted by its code ("451",
// "-ERR").
type replyError struct {
	code string
	line string
}

func (e replyError) Error() string { return fmt.Sprintf("unexpected reply %q", e.line) }

// kindOf names err for Result.Errors.
func kindOf(err error) string {
	var re replyError
	var de dialError
	var te tlsError
	switch {
	case errors.As(err, &re):
		return re.code
	case errors.As(err, &de):
		return "dial"
	case errors.As(err, &te) && errKind(te.err) == "io":
		return "tls"
	}
	return errKind(err)
}
