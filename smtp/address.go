package smtp

import (
	"net"
	"strings"
	"unicode/utf8"
)

// splitAddress splits a mailbox at its last '@'. go-smtp hands over the
// address with any quoting of the local part removed.
func splitAddress(addr string) (local, domain string, ok bool) {
	i := strings.LastIndexByte(addr, '@')
	if i <= 0 || i == len(addr)-1 {
		return "", "", false
	}
	return addr[:i], addr[i+1:], true
}

// baseLocal lower-cases a local part and drops a "+tag" subaddress
// (user+tag@ delivers to user).
func baseLocal(local string) string {
	local = strings.ToLower(local)
	if i := strings.IndexByte(local, '+'); i > 0 {
		local = local[:i]
	}
	return local
}

// isASCII reports whether s holds only 7-bit characters.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// maxPath is RFC 5321 §4.5.3.1.3's limit on a reverse- or forward-path,
// angle brackets included.
const maxPath = 256

// pathTooLong reports whether addr, once enclosed in <>, exceeds maxPath.
func pathTooLong(addr string) bool { return len(addr)+2 > maxPath }

// logAddr shortens an address the client sent before it is logged, so that
// a hostile client cannot fill the log with one 64 KiB line.
func logAddr(addr string) string {
	if len(addr) <= maxPath {
		return addr
	}
	return strings.ToValidUTF8(addr[:maxPath], "") + "..."
}

// validAddressText rejects what can never be a mailbox we would write into
// a header: invalid UTF-8, control characters (NUL, CR, LF, ...).
func validAddressText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// isAtext is RFC 5322 §3.2.3 atext (plus UTF-8, RFC 6532 §3.2).
func isAtext(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c >= 0x80:
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// isDotString reports whether local is an RFC 5321 §4.1.2 Dot-string, which
// needs no quoting.
func isDotString(local string) bool {
	if local == "" || local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return false
	}
	for i := 0; i < len(local); i++ {
		if local[i] != '.' && !isAtext(local[i]) {
			return false
		}
	}
	return true
}

// quotePath renders a reverse-path for Return-Path: the local part is quoted
// (RFC 5321 §4.1.2 Quoted-string) when it is not a Dot-string; the null
// sender is <>.
func quotePath(addr string) string {
	if addr == "" {
		return "<>"
	}
	local, domain, ok := splitAddress(addr)
	if !ok {
		local, domain = addr, ""
	}
	if !isDotString(local) {
		var b strings.Builder
		b.WriteByte('"')
		for i := 0; i < len(local); i++ {
			if local[i] == '"' || local[i] == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(local[i])
		}
		b.WriteByte('"')
		local = b.String()
	}
	if domain == "" {
		return "<" + local + ">"
	}
	return "<" + local + "@" + domain + ">"
}

// sanitizeHelo makes the client's EHLO/HELO argument safe for a header:
// only the characters of a domain or address literal survive, others become
// '?', and it is shortened to 255 octets (RFC 5321 §4.5.3.1.2).
func sanitizeHelo(s string) string {
	if s == "" {
		return "unknown"
	}
	if len(s) > 255 {
		s = s[:255]
	}
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte(".-_:[]", c) >= 0:
		default:
			b[i] = '?'
		}
	}
	return string(b)
}

// addressLiteral formats an IP as an RFC 5321 §4.1.3 address literal.
func addressLiteral(ip net.IP) string {
	if ip == nil {
		return "[unknown]"
	}
	if ip4 := ip.To4(); ip4 != nil {
		return "[" + ip4.String() + "]"
	}
	return "[IPv6:" + ip.String() + "]"
}

// hostIP extracts the IP of a TCP address.
func hostIP(a net.Addr) net.IP {
	switch v := a.(type) {
	case *net.TCPAddr:
		return v.IP
	case nil:
		return nil
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return nil
	}
	return net.ParseIP(host)
}
