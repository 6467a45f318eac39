package pop3

import (
	"bytes"
	"errors"
	"io"
)

// dotWriter turns stored message content into the RFC 1939 §3 multi-line
// form: every line end becomes CRLF and a line starting with "." gets
// another "." in front. Line ends are those of the maildir package's CRLF
// form (the definition of Message.Size): LF, CR LF, and a lone CR. Close
// ends the response with "." CRLF, after a CRLF if the content's last line
// had no line end, so the count n of octets before stuffing equals
// Message.Size. It streams: nothing is held beyond the caller's buffer.
type dotWriter struct {
	w io.Writer
	// out is w when w is a session's output: lines are then appended to
	// its buffer with their CRLF in one step.
	out       *output
	lineStart bool  // the next octet begins a line
	cr        bool  // the last octet was a CR (already sent as CRLF)
	n         int64 // octets of the CRLF form, before dot-stuffing
	err       error
}

func newDotWriter(w io.Writer) *dotWriter {
	d := &dotWriter{w: w, lineStart: true}
	d.out, _ = w.(*output)
	return d
}

var (
	crlf    = []byte("\r\n")
	dot     = []byte(".")
	dotCRLF = []byte(".\r\n")
)

func (d *dotWriter) write(p []byte) {
	if d.err == nil {
		_, d.err = d.w.Write(p)
	}
}

// Write converts p. Line ends are found with bytes.IndexByte, which is
// vectorised, instead of bytes.IndexAny, which goes octet by octet: LF
// first, and CR only where p has one at all (stored messages end their
// lines with LF, so CR is usually found nowhere, in one pass).
func (d *dotWriter) Write(p []byte) (int, error) {
	total := len(p)
	if d.cr && len(p) > 0 {
		d.cr = false
		if p[0] == '\n' {
			p = p[1:] // completes a CR LF already sent
		}
	}
	cr := bytes.IndexByte(p, '\r') // position of the next CR in p, or -1
	for len(p) > 0 && d.err == nil {
		if d.lineStart && p[0] == '.' {
			d.write(dot) // byte-stuffing, RFC 1939 §3
		}
		i := bytes.IndexByte(p, '\n')
		if cr >= 0 && (i < 0 || cr < i) {
			i = cr
		}
		if i < 0 {
			d.lineStart = false
			d.write(p)
			d.n += int64(len(p))
			break
		}
		if d.out != nil && d.err == nil {
			d.err = d.out.writeLine(p[:i])
		} else {
			if i > 0 {
				d.write(p[:i])
			}
			d.write(crlf)
		}
		d.n += int64(i) + 2
		d.lineStart = true
		next := i + 1
		if p[i] == '\r' {
			switch {
			case next == len(p):
				d.cr = true // an LF starting the next Write belongs to it
			case p[next] == '\n':
				next++
			}
		}
		p = p[next:]
		if cr >= 0 {
			if cr -= next; cr < 0 {
				cr = bytes.IndexByte(p, '\r')
			}
		}
	}
	if d.err != nil {
		return 0, d.err
	}
	return total, nil
}

// Close writes the terminator. A message whose last line has no line end
// is still followed by CRLF "." CRLF (SPEC §5).
func (d *dotWriter) Close() error {
	if !d.lineStart {
		d.write(crlf)
	}
	d.write(dotCRLF)
	d.lineStart, d.cr = true, false
	return d.err
}

// errTopDone stops the copy once TOP has sent what was asked.
var errTopDone = errors.New("top: done")

// topWriter passes the header, the blank line ending it, and at most lines
// body lines (RFC 1939 §7 TOP), then fails with errTopDone. Line ends are
// counted as dotWriter sees them (LF, CR LF, lone CR).
type topWriter struct {
	w       io.Writer
	lines   int  // body lines still wanted
	body    bool // past the blank line
	cr      bool // the last octet was a CR
	lineLen int  // octets of the current line
	done    bool
}

func (t *topWriter) Write(p []byte) (int, error) {
	if t.done {
		return 0, errTopDone
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '\n' && t.cr {
			t.cr = false
			continue // second half of a CR LF line end
		}
		t.cr = c == '\r'
		if c != '\n' && c != '\r' {
			t.lineLen++
			continue
		}
		if !t.body {
			t.body = t.lineLen == 0
		} else {
			t.lines--
		}
		t.lineLen = 0
		if t.body && t.lines <= 0 {
			t.done = true
			if _, err := t.w.Write(p[:i+1]); err != nil {
				return 0, err
			}
			return i + 1, errTopDone
		}
	}
	return t.w.Write(p)
}
