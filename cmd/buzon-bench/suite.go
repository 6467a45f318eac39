package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/buzon-mail/buzon/internal/atomicfile"
	"github.com/buzon-mail/buzon/internal/benchsuite"
)

// newSuiteCmd is `buzon-bench suite`, what `make bench` runs: every
// scenario against a fresh buzon with fixed parameters, one table, the
// targets, and a JSON record.
func newSuiteCmd() *cobra.Command {
	var (
		buzon, out, dir string
		keep, quick     bool
	)
	c := &cobra.Command{
		Use:   "suite",
		Short: "Start a fresh buzon on loopback, run every scenario with fixed parameters, report the table and the targets",
		Long: "suite starts `buzon serve` on free loopback ports with a temporary data directory and fresh accounts,\n" +
			"runs disk, smtp (c=1, 20, 50), pop3, a 25 MB message, pop3-list on 50,000 messages and 10,000 idle\n" +
			"connections, prints one table and the targets of issue 6, and writes the results as JSON.\n" +
			"Exit status 0 when the suite ran (missed targets are reported, not failures), 1 when it could not run.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			parent := cmd.Context()
			if parent == nil {
				parent = context.Background()
			}
			ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
			defer stop()
			rep, err := benchsuite.Run(ctx, benchsuite.Options{
				Buzon: buzon, Quick: quick, TempDir: dir, Keep: keep, Progress: cmd.ErrOrStderr(),
			})
			if len(rep.Results) > 0 || err == nil {
				fmt.Fprintln(cmd.OutOrStdout())
				rep.Print(cmd.OutOrStdout())
			}
			if err != nil {
				return err
			}
			if out != "" {
				if werr := writeReport(out, &rep); werr != nil {
					return werr
				}
				fmt.Fprintf(cmd.OutOrStdout(), "\nresults written to %s\n", out)
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&buzon, "buzon", "bin/buzon", "the buzon binary to measure")
	f.StringVar(&out, "out", "bench/results.json", "write the results as JSON here (empty: don't)")
	f.StringVar(&dir, "dir", "", "make the temporary data directory here (default $TMPDIR); its disk is what the disk and smtp rows measure")
	f.BoolVar(&keep, "keep", false, "keep the data directory, configuration and server log")
	f.BoolVar(&quick, "quick", false, "tiny parameters: checks that every step works, measures nothing")
	return c
}

// writeReport replaces path with the JSON report in one step, so a reader
// never sees half a file.
func writeReport(path string, rep *benchsuite.Report) error {
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("results: %w", err)
	}
	if err := atomicfile.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("results: %w", err)
	}
	return nil
}
