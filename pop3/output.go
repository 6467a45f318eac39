package pop3

import (
	"io"
	"sync"
)

// ioBufSize is the size of the buffers a busy session borrows: large
// enough that a big RETR goes out in few system calls.
const ioBufSize = 64 << 10

type ioBuf [ioBufSize]byte

// bufPool lends ioBufs to sessions. A session holds one only while it has
// replies not yet sent, and a second one while it reads a message file,
// so idle connections (thousands of them) hold none.
type bufPool struct{ p sync.Pool }

func (bp *bufPool) get() *ioBuf {
	if b, ok := bp.p.Get().(*ioBuf); ok {
		return b
	}
	return new(ioBuf)
}

func (bp *bufPool) put(b *ioBuf) { bp.p.Put(b) }

// output buffers a session's replies like a bufio.Writer, but borrows its
// buffer from the pool at the first write and gives it back at Flush. The
// session flushes before it waits for the next command, so a session
// waiting holds no output buffer. Errors are sticky, as with bufio.
type output struct {
	w    io.Writer
	pool *bufPool
	buf  *ioBuf // nil: nothing pending
	n    int    // octets pending in buf
	err  error
}

func (o *output) Write(p []byte) (int, error) { return writeTo(o, p) }

func (o *output) WriteString(s string) (int, error) { return writeTo(o, s) }

func writeTo[T string | []byte](o *output, p T) (int, error) {
	total := len(p)
	for len(p) > 0 {
		if o.err != nil {
			return 0, o.err
		}
		if o.buf == nil {
			o.buf = o.pool.get()
		}
		k := copy(o.buf[o.n:], p)
		o.n += k
		p = p[k:]
		if o.n == len(o.buf) {
			o.send()
		}
	}
	if o.err != nil {
		return 0, o.err
	}
	return total, nil
}

// writeLine writes line and CRLF: in place when the buffer has room (the
// common case in RETR, one call per line), else through Write.
func (o *output) writeLine(line []byte) error {
	if o.buf != nil && o.err == nil && o.n+len(line)+2 <= len(o.buf) {
		o.n += copy(o.buf[o.n:], line)
		o.buf[o.n], o.buf[o.n+1] = '\r', '\n'
		o.n += 2
		return nil
	}
	if _, err := o.Write(line); err != nil {
		return err
	}
	_, err := o.Write(crlf)
	return err
}

// send writes out what is pending, keeping the buffer.
func (o *output) send() {
	if o.n > 0 && o.err == nil {
		_, o.err = o.w.Write(o.buf[:o.n])
	}
	o.n = 0
}

// Flush sends what is pending and returns the buffer to the pool.
func (o *output) Flush() error {
	if o.buf != nil {
		o.send()
		o.release()
	}
	return o.err
}

// release returns the buffer, dropping anything pending (session end).
func (o *output) release() {
	if o.buf != nil {
		o.pool.put(o.buf)
		o.buf, o.n = nil, 0
	}
}

// Reset drops anything pending and the error, and writes to w from now on
// (STLS: the replies go through TLS).
func (o *output) Reset(w io.Writer) {
	o.release()
	o.w, o.err = w, nil
}
