package loadgen

import (
	"fmt"
	"io"
	"strconv"
	"time"
)

// Generated bodies are 76 printable characters per line plus CRLF, the
// longest line RFC 2045 §6.8 allows base64 to produce: plain-looking text.
const (
	lineText   = 76
	lineOctets = lineText + 2
	blockLines = 840 // 840 × 78 = 65,520 octets, just under 64 KiB
)

var crlf = []byte("\r\n")

// bodyBlock is one reusable block of body lines in raw and dot-stuffed
// form. A body of any length is whole blocks plus a prefix of one, so a
// 25,000,000-byte message never exists whole in memory.
type bodyBlock struct {
	raw     []byte
	stuffed []byte
	// off[i] is where line i starts in stuffed; off[blockLines] = len(stuffed).
	off []int
}

func newBodyBlock() *bodyBlock {
	b := &bodyBlock{
		raw:     make([]byte, 0, blockLines*lineOctets),
		stuffed: make([]byte, 0, blockLines*(lineOctets+1)),
		off:     make([]int, blockLines+1),
	}
	for i := range blockLines {
		start := len(b.raw)
		for j := range lineText {
			c := byte(33 + (i*7+j)%94)
			if j%9 == 8 {
				c = ' '
			}
			b.raw = append(b.raw, c)
		}
		// Every seventh line begins with a dot so that dot-stuffing
		// (RFC 5321 §4.5.2, RFC 1939 §3) is always exercised.
		if i%7 == 3 {
			b.raw[start] = '.'
		}
		b.raw = append(b.raw, crlf...)
		b.off[i] = len(b.stuffed)
		if b.raw[start] == '.' {
			b.stuffed = append(b.stuffed, '.')
		}
		b.stuffed = append(b.stuffed, b.raw[start:]...)
	}
	b.off[blockLines] = len(b.stuffed)
	return b
}

// writeBody writes n octets of body (n%lineOctets != 1: every line, the
// short last one too, ends in CRLF), dot-stuffed when stuffed is set.
func (b *bodyBlock) writeBody(w io.Writer, n int, stuffed bool) error {
	whole := b.raw
	if stuffed {
		whole = b.stuffed
	}
	for ; n >= len(b.raw); n -= len(b.raw) {
		if _, err := w.Write(whole); err != nil {
			return err
		}
	}
	k, r := n/lineOctets, n%lineOctets
	part := b.raw[:k*lineOctets]
	if stuffed {
		part = b.stuffed[:b.off[k]]
	}
	if _, err := w.Write(part); err != nil {
		return err
	}
	if r == 0 {
		return nil
	}
	last := b.raw[k*lineOctets : k*lineOctets+r-2]
	if stuffed && len(last) > 0 && last[0] == '.' {
		if _, err := w.Write([]byte{'.'}); err != nil {
			return err
		}
	}
	if _, err := w.Write(last); err != nil {
		return err
	}
	_, err := w.Write(crlf)
	return err
}

// messageGen makes messages of exactly size octets in CRLF form: an RFC
// 5322 header (From, To, Subject, Date, unique Message-ID) and a body from
// the shared block.
type messageGen struct {
	block  *bodyBlock
	from   string
	size   int
	prefix string // makes Message-IDs unique across runs
	hdr    []byte // reused
}

func newMessageGen(block *bodyBlock, from string, size int, prefix string) *messageGen {
	if from == "" {
		from = "bench@localhost" // a null envelope sender still needs a From field
	}
	return &messageGen{block: block, from: from, size: size, prefix: prefix}
}

// header builds the header of message seq for rcpt and returns it with
// the body length that makes the whole exactly g.size octets. When the
// full header does not fit, it falls back to the minimum RFC 5322 §3.6
// asks (Date and From); below that it fails.
func (g *messageGen) header(seq int64, rcpt string, date time.Time) ([]byte, int, error) {
	for _, full := range []bool{true, false} {
		for _, pad := range []bool{false, true} {
			h := g.hdr[:0]
			h = append(h, "From:"...)
			if pad {
				// One more octet of folding white space, so the body
				// never has to be a lone octet that cannot end in CRLF.
				h = append(h, ' ')
			}
			h = append(h, ' ')
			h = append(h, g.from...)
			h = append(h, crlf...)
			h = append(h, "Date: "...)
			h = date.AppendFormat(h, time.RFC1123Z)
			h = append(h, crlf...)
			if full {
				h = append(h, "To: "...)
				h = append(h, rcpt...)
				h = append(h, "\r\nSubject: buzon-bench message "...)
				h = strconv.AppendInt(h, seq, 10)
				h = append(h, "\r\nMessage-ID: <"...)
				h = append(h, g.prefix...)
				h = append(h, '.')
				h = strconv.AppendInt(h, seq, 10)
				h = append(h, "@buzon-bench>\r\n"...)
			}
			h = append(h, crlf...)
			g.hdr = h
			body := g.size - len(h)
			if body < 0 {
				break // padding will not help; try the shorter header
			}
			if body%lineOctets != 1 {
				return h, body, nil
			}
		}
	}
	return nil, 0, fmt.Errorf("message size %d is below the minimal header (%d octets)", g.size, g.minSize())
}

// minSize is the smallest message the minimal header allows.
func (g *messageGen) minSize() int {
	return len("From: ") + len(g.from) + len("\r\nDate: ") + len(time.RFC1123Z) + 2 + 2
}

// write writes message seq to w: header and body, dot-stuffed when
// stuffed is set, without the terminating ".".
func (g *messageGen) write(w io.Writer, seq int64, rcpt string, date time.Time, stuffed bool) error {
	h, body, err := g.header(seq, rcpt, date)
	if err != nil {
		return err
	}
	if _, err := w.Write(h); err != nil {
		return err
	}
	return g.block.writeBody(w, body, stuffed)
}
