// Command buzon-bench puts measured load on any SMTP or POP3 server by
// address (buzon, Postfix, Dovecot alike) and reports throughput, latency
// percentiles, errors and, given its PID, the server's memory.
//
// Exit status: 0 when the run completed, protocol errors counted in the
// report included; 1 when it could not run.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/buzon-mail/buzon/internal/loadgen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "buzon-bench",
		Short: "Load generator for SMTP and POP3 servers: throughput, latency, errors, server memory",
		Long: "buzon-bench measures any SMTP or POP3 server by address, so buzon, Postfix and Dovecot can be\n" +
			"compared side by side. Each scenario prints a table (or JSON with --json) and a progress line\n" +
			"per second on stderr (none with --quiet). Passwords given without \":pass\" come from\n" +
			"$BUZON_BENCH_PASSWORD, which keeps them off the command line.",
		SilenceUsage: true,
	}
	root.AddCommand(
		newSMTPCmd(),
		newPOP3Cmd(),
		newPOP3ListCmd(),
		newConnsCmd(),
		newDiskCmd(),
		newSuiteCmd(),
	)
	return root
}

// output holds the flags every scenario shares.
type output struct {
	json, quiet bool
	name        string
}

func (o *output) flags(c *cobra.Command) {
	c.Flags().BoolVar(&o.json, "json", false, "print the result as JSON instead of a table")
	c.Flags().BoolVar(&o.quiet, "quiet", false, "no progress line")
	c.Flags().StringVar(&o.name, "name", "", "label of the result (default derived from the parameters)")
}

func (o *output) progress(c *cobra.Command) io.Writer {
	if o.quiet {
		return nil
	}
	return c.ErrOrStderr()
}

// report prints res; a run that failed outright returns its error.
func (o *output) report(c *cobra.Command, res loadgen.Result, err error) error {
	if err != nil {
		return err
	}
	if o.json {
		return loadgen.WriteJSON(c.OutOrStdout(), []loadgen.Result{res})
	}
	loadgen.Table(c.OutOrStdout(), []loadgen.Result{res})
	return nil
}

// parseAccount reads "user:pass", or "user" with the password from
// $BUZON_BENCH_PASSWORD.
func parseAccount(s string) (loadgen.Account, error) {
	user, pass, ok := strings.Cut(s, ":")
	if !ok {
		pass = os.Getenv("BUZON_BENCH_PASSWORD")
	}
	if user == "" || pass == "" {
		return loadgen.Account{}, fmt.Errorf("account %q: want user:pass, or user with $BUZON_BENCH_PASSWORD set", user)
	}
	return loadgen.Account{User: user, Pass: pass}, nil
}
