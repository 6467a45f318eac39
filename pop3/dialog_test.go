package pop3

import (
	"encoding/base64"
	"strings"
	"testing"
)

var fixture = []fakeMsg{
	{"1700000000.M1P1.host", "Subject: one\n\nhello\n.dot line\n..two dots\n"},
	{"1700000001.M2P2.host", "Subject: two\nX: y\n\nl1\nl2\nl3\n"},
	{"1700000002.M3P3.host", "Subject: three\n\nno newline"},
	{strings.Repeat("x", 71), "Subject: long id\n\nbody\r"},
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

type step struct {
	send string   // raw bytes to send ("" sends nothing)
	want []string // reply lines; a trailing "*" matches a prefix
}

func TestDialogs(t *testing.T) {
	login := step{"USER alice\r\nPASS secret\r\n", []string{"+OK*", "+OK Logged in, 4 messages*"}}
	longUID := UIDL(strings.Repeat("x", 71))
	cases := []struct {
		name     string
		insecure bool // TrustLoopback off: the client acts as remote
		steps    []step
	}{
		{"capa before login", false, []step{{"CAPA\r\n", []string{"+OK*", "TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "USER", "SASL PLAIN LOGIN", "IMPLEMENTATION buzon", "."}}}},
		{"capa case-insensitive", false, []step{{"capa\r\n", []string{"+OK*", "TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "USER", "SASL PLAIN LOGIN", "IMPLEMENTATION buzon", "."}}}},
		{"capa with argument", false, []step{{"CAPA x\r\n", []string{"-ERR*"}}}},
		{"quit before login", false, []step{{"QUIT\r\n", []string{"+OK*", "<EOF>"}}}},
		{"quit with argument", false, []step{{"QUIT now\r\n", []string{"-ERR*"}}}},
		{"transaction commands before login", false, []step{
			{"STAT\r\n", []string{"-ERR*"}}, {"LIST\r\n", []string{"-ERR*"}}, {"RETR 1\r\n", []string{"-ERR*"}},
			{"DELE 1\r\n", []string{"-ERR*"}}, {"NOOP\r\n", []string{"-ERR*"}}, {"RSET\r\n", []string{"-ERR*"}},
			{"TOP 1 1\r\n", []string{"-ERR*"}}, {"UIDL\r\n", []string{"-ERR*"}},
		}},
		{"apop not offered", false, []step{{"APOP alice 0123456789abcdef0123456789abcdef\r\n", []string{"-ERR*"}}}},
		{"unknown and malformed", false, []step{
			{"HELO\r\n", []string{"-ERR Unknown command"}}, {"\r\n", []string{"-ERR Empty command"}},
			{"US\r\n", []string{"-ERR Invalid command"}}, {"USER\x00x\r\n", []string{"-ERR Invalid command"}},
			{"\xff\xfe\r\n", []string{"-ERR Invalid command"}},
			{"USER " + strings.Repeat("a", 1100) + "\r\n", []string{"-ERR Line too long"}},
			{"CAPA\r\n", []string{"+OK*", "TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "USER", "SASL PLAIN LOGIN", "IMPLEMENTATION buzon", "."}},
		}},
		{"ten bad commands close", false, []step{{strings.Repeat("BAD\r\n", 9), []string{"-ERR*", "-ERR*", "-ERR*", "-ERR*", "-ERR*", "-ERR*", "-ERR*", "-ERR*", "-ERR*"}},
			{"BAD\r\n", []string{"-ERR*closing", "<EOF>"}}}},
		{"good command resets bad count", false, []step{{strings.Repeat("BAD\r\n", 9) + "USER x\r\n", nil},
			{strings.Repeat("BAD\r\n", 9), nil}, {"QUIT\r\n", []string{"+OK*"}}}},
		{"user pass", false, []step{login, {"QUIT\r\n", []string{"+OK Bye, 0 messages deleted", "<EOF>"}}}},
		{"user name case-insensitive", false, []step{{"user ALICE\r\npass secret\r\n", []string{"+OK*", "+OK Logged in*"}}}},
		{"path in user name", false, []step{{"USER ../../etc/passwd\r\nPASS x\r\n", []string{"+OK*", "-ERR [AUTH] Authentication failed"}}}},
		{"user without name", false, []step{{"USER\r\n", []string{"-ERR Usage*"}}}},
		{"pass without user", false, []step{{"PASS secret\r\n", []string{"-ERR USER first"}}}},
		{"wrong password", false, []step{{"USER alice\r\nPASS nope\r\n", []string{"+OK*", "-ERR [AUTH] Authentication failed"}},
			{"PASS secret\r\n", []string{"-ERR USER first"}}}},
		{"unknown user looks the same", false, []step{{"USER zed\r\nPASS nope\r\n", []string{"+OK*", "-ERR [AUTH] Authentication failed"}}}},
		{"auth plain initial response", false, []step{{"AUTH PLAIN " + b64("\x00alice\x00secret") + "\r\n", []string{"+OK Logged in*"}}}},
		{"auth plain with authzid self", false, []step{{"AUTH PLAIN " + b64("alice\x00alice\x00secret") + "\r\n", []string{"+OK Logged in*"}}}},
		{"auth plain other authzid", false, []step{{"AUTH PLAIN " + b64("bob\x00alice\x00secret") + "\r\n", []string{"-ERR [AUTH]*"}}}},
		{"auth plain continuation", false, []step{{"AUTH PLAIN\r\n", []string{"+ "}}, {b64("\x00alice\x00secret") + "\r\n", []string{"+OK Logged in*"}}}},
		{"auth plain lower-case mechanism", false, []step{{"auth plain\r\n", []string{"+ "}}, {b64("\x00alice\x00secret") + "\r\n", []string{"+OK Logged in*"}}}},
		{"auth plain cancelled", false, []step{{"AUTH PLAIN\r\n", []string{"+ "}}, {"*\r\n", []string{"-ERR*"}}, {"STAT\r\n", []string{"-ERR*"}}}},
		{"auth plain bad base64", false, []step{{"AUTH PLAIN !!!\r\n", []string{"-ERR [AUTH]*"}}}},
		{"auth plain malformed", false, []step{{"AUTH PLAIN " + b64("alice secret") + "\r\n", []string{"-ERR [AUTH]*"}}}},
		{"auth plain wrong password", false, []step{{"AUTH PLAIN " + b64("\x00alice\x00nope") + "\r\n", []string{"-ERR [AUTH] Authentication failed"}}}},
		{"auth plain empty initial", false, []step{{"AUTH PLAIN =\r\n", []string{"-ERR [AUTH]*"}}}},
		{"auth plain overlong", false, []step{{"AUTH PLAIN\r\n", []string{"+ "}}, {strings.Repeat("A", 5000) + "\r\n", []string{"-ERR [AUTH]*too long"}}, {"NOOP\r\n", []string{"-ERR*"}}}},
		{"auth login", false, []step{{"AUTH LOGIN\r\n", []string{"+ VXNlcm5hbWU6"}}, {b64("alice") + "\r\n", []string{"+ UGFzc3dvcmQ6"}}, {b64("secret") + "\r\n", []string{"+OK Logged in*"}}}},
		{"auth login initial response", false, []step{{"AUTH LOGIN " + b64("alice") + "\r\n", []string{"+ UGFzc3dvcmQ6"}}, {b64("secret") + "\r\n", []string{"+OK Logged in*"}}}},
		{"auth login cancelled", false, []step{{"AUTH LOGIN\r\n", []string{"+ VXNlcm5hbWU6"}}, {"*\r\n", []string{"-ERR*"}}}},
		{"auth unknown mechanism", false, []step{{"AUTH CRAM-MD5\r\n", []string{"-ERR*"}}}},
		{"auth list", false, []step{{"AUTH\r\n", []string{"+OK*", "PLAIN", "LOGIN", "."}}}},
		{"auth too many args", false, []step{{"AUTH PLAIN a b\r\n", []string{"-ERR*"}}}},
		{"stls without tls", false, []step{{"STLS\r\n", []string{"-ERR*"}}}},
		{"insecure capa hides login", true, []step{{"CAPA\r\n", []string{"+OK*", "TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "IMPLEMENTATION buzon", "."}}}},
		{"insecure user refused", true, []step{{"USER alice\r\n", []string{"-ERR [AUTH] Plaintext authentication disallowed without TLS"}}}},
		{"insecure pass refused", true, []step{{"PASS secret\r\n", []string{"-ERR [AUTH] Plaintext authentication disallowed without TLS"}}}},
		{"insecure auth refused", true, []step{{"AUTH PLAIN " + b64("\x00alice\x00secret") + "\r\n", []string{"-ERR [AUTH] Plaintext authentication disallowed without TLS"}}}},
		{"stat list uidl", false, []step{login,
			{"STAT\r\n", []string{"+OK 4 134"}},
			{"LIST\r\n", []string{"+OK 4 messages (134 octets)", "1 46", "2 34", "3 28", "4 26", "."}},
			{"list 2\r\n", []string{"+OK 2 34"}},
			{"UIDL\r\n", []string{"+OK*", "1 1700000000.M1P1.host", "2 1700000001.M2P2.host", "3 1700000002.M3P3.host", "4 " + longUID, "."}},
			{"UIDL 4\r\n", []string{"+OK 4 " + longUID}},
		}},
		{"bad message numbers", false, []step{login,
			{"LIST 0\r\n", []string{"-ERR No such message"}}, {"LIST 5\r\n", []string{"-ERR No such message"}},
			{"LIST -1\r\n", []string{"-ERR Invalid message number"}}, {"LIST +1\r\n", []string{"-ERR Invalid message number"}},
			{"LIST x\r\n", []string{"-ERR Invalid message number"}}, {"LIST 99999999999999999999\r\n", []string{"-ERR Invalid message number"}},
			{"LIST 1 2\r\n", []string{"-ERR Usage*"}}, {"UIDL 9\r\n", []string{"-ERR No such message"}},
		}},
		{"bad message numbers 2", false, []step{login,
			{"RETR\r\n", []string{"-ERR Usage*"}}, {"RETR 0\r\n", []string{"-ERR No such message"}}, {"RETR 1 2\r\n", []string{"-ERR Usage*"}},
			{"DELE\r\n", []string{"-ERR Usage*"}}, {"DELE 7\r\n", []string{"-ERR No such message"}},
			{"TOP 1\r\n", []string{"-ERR Usage*"}}, {"TOP 1 x\r\n", []string{"-ERR Invalid number of lines"}}, {"TOP 9 1\r\n", []string{"-ERR No such message"}},
		}},
		{"arguments where none are taken", false, []step{login,
			{"STAT 1\r\n", []string{"-ERR*"}}, {"NOOP 1\r\n", []string{"-ERR*"}}, {"RSET 1\r\n", []string{"-ERR*"}},
		}},
		{"retr dot-stuffing", false, []step{login,
			{"RETR 1\r\n", []string{"+OK 46 octets", "Subject: one", "", "hello", "..dot line", "...two dots", "."}}}},
		{"retr no final newline", false, []step{login,
			{"RETR 3\r\n", []string{"+OK 28 octets", "Subject: three", "", "no newline", "."}}}},
		{"retr lone cr at end", false, []step{login,
			{"RETR 4\r\n", []string{"+OK 26 octets", "Subject: long id", "", "body", "."}}}},
		{"top", false, []step{login,
			{"TOP 2 0\r\n", []string{"+OK*", "Subject: two", "X: y", "", "."}},
			{"TOP 2 2\r\n", []string{"+OK*", "Subject: two", "X: y", "", "l1", "l2", "."}},
			{"top 2 99\r\n", []string{"+OK*", "Subject: two", "X: y", "", "l1", "l2", "l3", "."}},
			{"TOP 1 1\r\n", []string{"+OK*", "Subject: one", "", "hello", "."}},
		}},
		{"dele rset", false, []step{login,
			{"DELE 1\r\n", []string{"+OK*"}}, {"DELE 1\r\n", []string{"-ERR Message 1 already deleted"}},
			{"RETR 1\r\n", []string{"-ERR*deleted"}}, {"LIST 1\r\n", []string{"-ERR*deleted"}}, {"TOP 1 0\r\n", []string{"-ERR*deleted"}},
			{"STAT\r\n", []string{"+OK 3 88"}},
			{"LIST\r\n", []string{"+OK 3 messages (88 octets)", "2 34", "3 28", "4 26", "."}},
			{"UIDL\r\n", []string{"+OK*", "2 1700000001.M2P2.host", "3 1700000002.M3P3.host", "4 " + longUID, "."}},
			{"RSET\r\n", []string{"+OK Maildrop has 4 messages (134 octets)"}}, {"STAT\r\n", []string{"+OK 4 134"}},
			{"NOOP\r\n", []string{"+OK*"}},
		}},
		{"login commands after login", false, []step{login,
			{"USER alice\r\n", []string{"-ERR*"}}, {"PASS secret\r\n", []string{"-ERR*"}}, {"AUTH PLAIN\r\n", []string{"-ERR*"}},
			{"STLS\r\n", []string{"-ERR*"}}, {"APOP a b\r\n", []string{"-ERR*"}}, {"XYZ\r\n", []string{"-ERR Unknown command"}},
			{"CAPA\r\n", []string{"+OK*", "TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "USER", "SASL PLAIN LOGIN", "IMPLEMENTATION buzon", "."}},
		}},
		{"pipelining", false, []step{{"USER alice\r\nPASS secret\r\nSTAT\r\nLIST 1\r\nUIDL 1\r\nNOOP\r\nQUIT\r\n",
			[]string{"+OK*", "+OK*", "+OK 4 134", "+OK 1 46", "+OK 1 1700000000.M1P1.host", "+OK*", "+OK*", "<EOF>"}}}},
		{"lf line ends accepted", false, []step{{"USER alice\nPASS secret\nSTAT\n", []string{"+OK*", "+OK*", "+OK 4 134"}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := newFakeStore()
			drop := st.add("alice", fixture...)
			srv := newTestServer(st)
			srv.TrustLoopback = !tc.insecure
			addr := startServer(t, srv)
			c := dial(t, addr)
			for _, s := range tc.steps {
				if s.send != "" {
					c.send(s.send)
				}
				for _, w := range s.want {
					got := c.line()
					if p, q, ok := strings.Cut(w, "*"); ok {
						if !strings.HasPrefix(got, p) || !strings.HasSuffix(got[len(p):], q) {
							t.Fatalf("after %q: got %q, want %q", s.send, got, w)
						}
					} else if got != w {
						t.Fatalf("after %q: got %q, want %q", s.send, got, w)
					}
				}
				if s.want == nil {
					// Drain replies: one line per command sent.
					for range strings.Count(s.send, "\n") {
						c.line()
					}
				}
			}
			c.conn.Close()
			waitFor(t, "lock released", func() bool { return !drop.isLocked() })
			if got := len(drop.ids()); got != len(fixture) {
				t.Fatalf("messages left %d, want %d (nothing deleted without QUIT)", got, len(fixture))
			}
		})
	}
}
