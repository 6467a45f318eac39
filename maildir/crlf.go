package maildir

import (
	"bytes"
	"io"
)

// The CRLF form of a stored message (Message.Size, the ,W= field) is what
// POP3 RETR sends before dot-stuffing. Every line end of the stored file
// becomes CRLF:
//
//   - LF → CRLF (2 octets);
//   - CR LF (a foreign file stored with CRLF) → CRLF (2 octets, not 3);
//   - a lone CR (not followed by LF, also at the very end) → CRLF
//     (2 octets): it ends a line;
//   - every other octet counts 1;
//   - a last line without any line end counts its octets only: the CRLF
//     POP3 puts before the terminating "." is part of the terminator.
//
// CRLFSize and the counting in Delivery.Write implement exactly this.

// CRLFSize returns the CRLF-form size of stored content read from r.
func CRLFSize(r io.Reader) (int64, error) {
	var c crlfCounter
	buf := make([]byte, 64<<10)
	for {
		n, err := r.Read(buf)
		c.count(buf[:n])
		if err == io.EOF {
			return c.finish(), nil
		}
		if err != nil {
			return 0, err
		}
	}
}

// crlfCounter counts the CRLF form of stored content fed in pieces.
type crlfCounter struct {
	n  int64
	cr bool // the last octet seen was a CR (its line end is counted)
}

func (c *crlfCounter) count(p []byte) {
	if len(p) == 0 {
		return
	}
	if c.cr && p[0] == '\n' {
		p = p[1:] // LF completing a counted CR LF
	}
	c.cr = false
	// Every octet counts 1 and every LF 1 more, as if all were bare; the
	// CRs, usually none (stored files end lines with LF), then correct
	// that. bytes.Count and bytes.IndexByte are vectorised, unlike the
	// octet-by-octet bytes.IndexAny.
	c.n += int64(len(p)) + int64(bytes.Count(p, lf))
	for i := bytes.IndexByte(p, '\r'); i >= 0; {
		switch {
		case i+1 == len(p):
			c.n++ // a line end whatever follows; a leading LF next is skipped
			c.cr = true
			return
		case p[i+1] == '\n':
			c.n-- // CR LF: its LF was counted as bare
		default:
			c.n++ // lone CR
		}
		j := bytes.IndexByte(p[i+1:], '\r')
		if j < 0 {
			return
		}
		i += 1 + j
	}
}

var lf = []byte{'\n'}

func (c *crlfCounter) finish() int64 { return c.n }

// lfConverter converts incoming message bytes (CRLF or LF line ends) to
// the stored form (CRLF → LF; LF and lone CR kept), streaming: a CR at the
// end of one Write is held until the next octet shows whether it starts a
// CRLF. It counts the stored size (S) and the CRLF-form size (W) exactly
// as crlfCounter would count the stored output.
type lfConverter struct {
	w     io.Writer // buffered file
	disk  int64     // octets handed to w
	crlf  crlfCounter
	heldC bool // a CR is held back
	err   error
}

func (c *lfConverter) write(b []byte) error {
	if c.err != nil {
		return c.err
	}
	n, err := c.w.Write(b)
	c.disk += int64(n)
	if err != nil {
		c.err = err
	}
	return err
}

var crByte = []byte{'\r'}

// Write converts p; it returns len(p) unless the underlying writer failed.
func (c *lfConverter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	total := len(p)
	if c.heldC && len(p) > 0 {
		c.heldC = false
		if p[0] != '\n' {
			// A lone CR: stored as is (it still counts as a line end).
			if err := c.write(crByte); err != nil {
				return 0, err
			}
			c.crlf.count(crByte)
		}
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\r')
		if i < 0 {
			if err := c.write(p); err != nil {
				return 0, err
			}
			c.crlf.count(p)
			break
		}
		if i+1 == len(p) {
			// CR at the buffer's end: decide on the next Write.
			if err := c.write(p[:i]); err != nil {
				return 0, err
			}
			c.crlf.count(p[:i])
			c.heldC = true
			break
		}
		if p[i+1] == '\n' {
			// CRLF → LF: write up to the CR, then continue at the LF.
			if err := c.write(p[:i]); err != nil {
				return 0, err
			}
			c.crlf.count(p[:i])
			p = p[i+1:]
			continue
		}
		// Lone CR inside the buffer: keep it.
		if err := c.write(p[:i+1]); err != nil {
			return 0, err
		}
		c.crlf.count(p[:i+1])
		p = p[i+1:]
	}
	return total, nil
}

// flush writes a held CR (a message ending in a lone CR).
func (c *lfConverter) flush() error {
	if c.heldC {
		c.heldC = false
		if err := c.write(crByte); err != nil {
			return err
		}
		c.crlf.count(crByte)
	}
	return c.err
}

// size is the CRLF-form size so far; a held CR counts as a line end
// whichever way it resolves.
func (c *lfConverter) size() int64 {
	if c.heldC {
		return c.crlf.n + 2
	}
	return c.crlf.n
}
