// Command buzon is the buzon mail server and its utilities: `buzon serve`
// runs SMTP, POP3 and MGMT in one process; `buzon user`, `buzon config` and
// `buzon version` work on the store and the configuration directly.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(&globals{}, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes the command tree and returns the exit status. g carries
// settings the command line does not reach (tests lower the bcrypt cost).
func run(g *globals, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g.args = args
	root := newRoot(g, stdin, stdout, stderr)
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(stderr, "buzon:", err)
		return 1
	}
	return 0
}

// globals are the flags every command shares.
type globals struct {
	configFile string
	args       []string // the command line, for error messages
	// bcryptCost is the cost of the hashes `buzon user` writes (0: the
	// users package default).
	bcryptCost int
}

func newRoot(g *globals, stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "buzon",
		Short:         "buzon: SMTP, POP3 and management in one mail server",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate("buzon {{.Version}}\n")
	root.PersistentFlags().StringVar(&g.configFile, "config", "",
		"configuration file (default ./buzon.yaml, else /etc/buzon/buzon.yaml)")
	root.PersistentFlags().String("data-dir", "", "directory of all state (data_dir)")

	root.AddCommand(newServeCmd(g), newUserCmd(g), newConfigCmd(g), newVersionCmd())
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "buzon %s\n", version)
			return nil
		},
	}
}
