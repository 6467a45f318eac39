package mgmt

import "testing"

// BenchmarkParse parses a table of typical MGMT lines, line ends included.
func BenchmarkParse(b *testing.B) {
	lines := []string{"LOGIN admin S3cret!\r\n", "STATUS\r\n", "USERS\r\n", "ADDUSER alice pw-alice\r\n",
		"DELUSER alice\r\n", "PASSWD alice new-pw\r\n", "MAX_CONNEC 500\r\n", "TRANSFORM ON\r\n", "PAUSE\r\n", "QUIT\r\n"}
	b.ReportAllocs()
	for b.Loop() {
		for _, l := range lines {
			if _, _, err := Parse(l); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(lines)), "ns/line")
}
