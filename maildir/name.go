package maildir

import (
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Unique names.
//
// A buzon file name is
//
//	<sec>.M<usec>P<pid>R<16 hex digits>.<host>,S=<size on disk>,W=<CRLF size>
//
// <sec>.M<usec> is the delivery time (Maildir convention; List orders by
// it). P<pid> keeps processes apart. R is a 64-bit value made by a
// bijective mix of a per-store random seed plus a per-store counter: two
// deliveries of one store never get the same value (the mix is a
// permutation), and the digits of consecutive names are uncorrelated.
// Names that differ only in a few correlated digits hash badly in
// Dovecot's maildir name tables (a 50,000-message Maildir named with
// sequential counters cost Dovecot 2.3 seconds per login), so the varying
// part must look random. The host part is sanitised to [A-Za-z0-9.-] and
// cut to maxHostLen, which keeps the unique part (the POP3 UIDL) at most
// 10+2+6+1+7+1+16+1+maxHostLen = 64 octets of 0x21-0x7E.
const maxHostLen = 20

// namer makes unique names for one Store.
type namer struct {
	seed uint64
	ctr  atomic.Uint64
	pid  string
	host string
}

// mix64 is a bijection on uint64 (the splitmix64 finalizer).
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// next returns a fresh unique name (without the ,S= and ,W= fields).
func (n *namer) next(now time.Time) string {
	r := mix64(n.seed + n.ctr.Add(1))
	b := make([]byte, 0, 64)
	b = strconv.AppendInt(b, now.Unix(), 10)
	b = append(b, ".M"...)
	// Microseconds zero-padded to 6 digits: names sort by time as text too.
	us := now.Nanosecond() / 1000
	for d := 100000; d > 1; d /= 10 {
		if us < d {
			b = append(b, '0')
		}
	}
	b = strconv.AppendInt(b, int64(us), 10)
	b = append(b, 'P')
	b = append(b, n.pid...)
	b = append(b, 'R')
	const hexdig = "0123456789abcdef"
	for i := 60; i >= 0; i -= 4 {
		b = append(b, hexdig[(r>>uint(i))&0xf])
	}
	b = append(b, '.')
	b = append(b, n.host...)
	return string(b)
}

// withSizes appends the Dovecot-style size fields to a unique name.
func withSizes(unique string, s, w int64) string {
	return unique + ",S=" + strconv.FormatInt(s, 10) + ",W=" + strconv.FormatInt(w, 10)
}

// sanitizeHost keeps [A-Za-z0-9.-] of a host name (so no '/', ':' or ','
// can reach a file name), trims dots and cuts it to maxHostLen.
func sanitizeHost(h string) string {
	b := make([]byte, 0, len(h))
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.':
			b = append(b, c)
		}
	}
	s := strings.Trim(string(b), ".")
	if len(s) > maxHostLen {
		s = strings.TrimRight(s[:maxHostLen], ".")
	}
	if s == "" {
		s = "localhost"
	}
	return s
}

// parsedName is what a file name in new/ or cur/ says about its message.
type parsedName struct {
	id    string // unique name: before the info (":2,...") without S= and W=
	time  int64  // delivery time in microseconds (seconds alone if no M field); 0 if unknown
	size  int64  // ,S= value, -1 if absent
	vsize int64  // ,W= value (CRLF size), -1 if absent
}

// parseName splits a Maildir file name. ok is false for names that are
// not messages (empty, dot files). It never fails otherwise: foreign names
// simply lack the fields.
func parseName(name string) (p parsedName, ok bool) {
	p.size, p.vsize = -1, -1
	if name == "" || name[0] == '.' {
		return p, false
	}
	base := name
	// The info part starts at the first ':' (":2,<flags>"; ":1," is
	// experimental and treated the same).
	if i := strings.IndexByte(base, ':'); i >= 0 {
		base = base[:i]
	}
	if base == "" {
		return p, false
	}
	p.id = base
	if i := strings.IndexByte(base, ','); i >= 0 {
		core, fields := base[:i], base[i+1:]
		rest := "" // fields other than S= and W= stay part of the id
		for more := true; more; {
			f := fields
			if j := strings.IndexByte(fields, ','); j >= 0 {
				f, fields = fields[:j], fields[j+1:]
			} else {
				more = false
			}
			switch {
			case len(f) > 2 && f[0] == 'S' && f[1] == '=':
				if v, ok := parseSize(f[2:]); ok {
					if p.size < 0 {
						p.size = v
					}
					continue
				}
			case len(f) > 2 && f[0] == 'W' && f[1] == '=':
				if v, ok := parseSize(f[2:]); ok {
					if p.vsize < 0 {
						p.vsize = v
					}
					continue
				}
			}
			rest += "," + f
		}
		if rest == "" {
			p.id = core
		} else {
			p.id = core + rest
		}
		if p.id == "" {
			return p, false
		}
	}
	p.time = parseTime(p.id)
	return p, true
}

// parseSize parses a non-negative decimal of at most 18 digits.
func parseSize(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var v int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}

// parseTime reads the delivery time of a conventional unique name
// "<sec>.<middle>.<host>": seconds, plus microseconds from an "M<digits>"
// field of the middle part (buzon, Dovecot and Postfix all write one).
func parseTime(id string) int64 {
	i := 0
	var sec int64
	for i < len(id) && i < 12 && id[i] >= '0' && id[i] <= '9' {
		sec = sec*10 + int64(id[i]-'0')
		i++
	}
	if i == 0 || (i < len(id) && id[i] != '.') {
		return 0
	}
	t := sec * 1e6
	if i >= len(id) {
		return t
	}
	mid := id[i+1:]
	if j := strings.IndexByte(mid, '.'); j >= 0 {
		mid = mid[:j]
	}
	for j := 0; j+1 < len(mid); j++ {
		if mid[j] != 'M' || mid[j+1] < '0' || mid[j+1] > '9' {
			continue
		}
		var us int64
		k := j + 1
		for k < len(mid) && k-j <= 6 && mid[k] >= '0' && mid[k] <= '9' {
			us = us*10 + int64(mid[k]-'0')
			k++
		}
		if k < len(mid) && mid[k] >= '0' && mid[k] <= '9' {
			break // more than 6 digits: not microseconds
		}
		return t + us
	}
	return t
}
