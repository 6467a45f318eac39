// Command admin_monitor is the one-shot MGMT client (SPEC §8): it logs in,
// runs one command, prints the answer and exits 0 on +OK, 1 on -ERR and 2
// on usage, connection or version errors.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}
