package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/imgfs/imgfs/custody"
)

// A chain-of-custody log (--custody FILE) gets one record per evidence action. withCustody adds the
// flag to a command and wraps its Action: the log is checked before the action runs (a damaged log is
// refused before anything is done), and a record of the action's result is appended when it returns.
// An Action reaches the record through custodyOf(c): Note attaches details, SetArchive names what it
// was applied to (by default the first argument), Record appends a record at once (the mount does,
// when it is ready and when it ends), Skip leaves the recording to another process.

// custodyKey is the context key of a command's *custodyState.
type custodyKey struct{}

// custodyState is what the wrapper records for one action.
type custodyState struct {
	log      string // absolute path of the log
	action   string
	archive  string // path of the archive acted on; "" for none
	sum      *custody.Archive
	details  map[string]any
	recorded bool // the action recorded itself (Record or Skip)
}

// withCustody adds --custody FILE to cmd and records every run of its Action in that log.
func withCustody(cmd *cli.Command) *cli.Command {
	cmd.Flags = append(cmd.Flags, &cli.StringFlag{Name: "custody", Usage: "append a chain-of-custody record of this action to the JSON-lines log `FILE` (see 'imgfs custody verify')"})
	inner := cmd.Action
	cmd.Action = func(c *cli.Context) error {
		path := c.String("custody")
		if path == "" {
			return inner(c)
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return fmt.Errorf("--custody: %w", err)
		}
		if err := checkLogOutside(abs, c.Args().First()); err != nil {
			return err
		}
		if _, err := os.Stat(abs); err == nil {
			// Refuse before acting: a record appended to a broken chain would prove nothing.
			if _, err := custody.Verify(abs); err != nil {
				return fmt.Errorf("--custody: %w (start a new log; keep this one as it is)", err)
			}
		}
		cs := &custodyState{log: abs, action: cmd.Name, archive: c.Args().First(), details: map[string]any{}}
		c.Context = context.WithValue(c.Context, custodyKey{}, cs)
		err = inner(c)
		if cs.recorded {
			return err
		}
		if rerr := cs.Record(c, cs.action, err); rerr != nil {
			return errors.Join(err, rerr)
		}
		return err
	}
	return cmd
}

// checkLogOutside refuses a custody log that is the archive, or lies in an archive directory: writing
// it would change the evidence.
func checkLogOutside(log, archive string) error {
	if archive == "" {
		return nil
	}
	st, err := os.Stat(archive)
	if err != nil {
		return nil // the action reports it
	}
	real, err := filepath.EvalSymlinks(archive)
	if err != nil {
		return nil
	}
	real, _ = filepath.Abs(real)
	dir, err := filepath.EvalSymlinks(filepath.Dir(log))
	if err != nil {
		return nil // the append reports it
	}
	logReal := filepath.Join(dir, filepath.Base(log))
	if logReal == real {
		return fmt.Errorf("--custody %s: that is the archive itself", log)
	}
	if rel, err := filepath.Rel(real, logReal); st.IsDir() && err == nil && filepath.IsLocal(rel) {
		return fmt.Errorf("--custody %s: the log lies in the archive directory %s; writing it would change the evidence", log, archive)
	}
	return nil
}

// custodyOf returns the custody state of the running command; nil (whose methods do nothing) when
// no log was asked for.
func custodyOf(c *cli.Context) *custodyState {
	if c == nil || c.Context == nil {
		return nil
	}
	cs, _ := c.Context.Value(custodyKey{}).(*custodyState)
	return cs
}

// Note attaches a detail to the action's record.
func (cs *custodyState) Note(key string, v any) {
	if cs != nil {
		cs.details[key] = v
	}
}

// SetArchive names the archive the action applies to ("" for none).
func (cs *custodyState) SetArchive(path string) {
	if cs != nil {
		cs.archive, cs.sum = path, nil
	}
}

// SetSum gives the archive's identity and sha256 as the action established them (else the record
// takes them from custody.Identify when it is written).
func (cs *custodyState) SetSum(a custody.Archive) {
	if cs != nil {
		cs.sum = &a
	}
}

// Skip leaves the recording of this action to another process (the mount's daemon).
func (cs *custodyState) Skip() {
	if cs != nil {
		cs.recorded = true
	}
}

// Record appends a record of action with result err (nil: ok) and the details noted so far, which it
// then clears; the wrapper records nothing more.
func (cs *custodyState) Record(c *cli.Context, action string, err error) error {
	if cs == nil {
		return nil
	}
	cs.recorded = true
	rec := &custody.Record{Action: action, Details: cs.details}
	cs.details = map[string]any{}
	if err != nil {
		rec.Result, rec.Error = custody.ResultError, err.Error()
	}
	if cs.archive != "" {
		if cs.sum != nil {
			rec.Archive = cs.sum
		} else {
			ctx := context.WithoutCancel(c.Context)
			a, cached, ierr := custody.Identify(ctx, cs.archive, custody.SumOptions{CacheDir: cacheDir(c), Logger: newLogger(c)})
			if ierr != nil {
				abs, _ := filepath.Abs(cs.archive)
				a = custody.Archive{Path: abs}
				rec.Details["archive_error"] = ierr.Error()
			} else {
				rec.Details["sha256_cached"] = cached
			}
			rec.Archive = &a
		}
	}
	if len(rec.Details) == 0 {
		rec.Details = nil
	}
	if err := custody.Append(cs.log, rec); err != nil {
		return fmt.Errorf("the custody record of %s was not written: %w", action, err)
	}
	return nil
}

// custodyNoteOutput notes an output file written by the action, with its identity and sha256 read
// back from the disk.
func custodyNoteOutput(c *cli.Context, path string, log *slog.Logger) {
	cs := custodyOf(c)
	if cs == nil {
		return
	}
	a, err := custody.Hash(context.WithoutCancel(c.Context), path, custody.SumOptions{Logger: log})
	if err != nil {
		cs.Note("output", path)
		cs.Note("output_error", err.Error())
		return
	}
	cs.Note("output", a)
}

func custodyCommand() *cli.Command {
	return &cli.Command{
		Name:  "custody",
		Usage: "check a chain-of-custody log written by --custody",
		Subcommands: []*cli.Command{{
			Name:      "verify",
			Usage:     "check every record of a custody log and the hash chain between them",
			ArgsUsage: "FILE",
			Description: "Exit 0 when every record is intact and each holds the sha256 of the one before (no record\n" +
				"edited, removed or reordered, the last line complete); 1 naming the first bad record. It prints the\n" +
				"log's head (the sha256 of its last line): write it down, and --head proves later that the log ends\n" +
				"where it ended then.",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "head", Usage: "the head (sha256 hex) the log must end with"},
			},
			Action: runCustodyVerify,
		}},
	}
}

func runCustodyVerify(c *cli.Context) error {
	if c.NArg() != 1 {
		return fmt.Errorf("custody verify: want FILE, got %d argument(s) (see 'imgfs custody verify --help')", c.NArg())
	}
	path := c.Args().First()
	rep, err := custody.Verify(path)
	if err != nil {
		return err
	}
	if h := c.String("head"); h != "" && h != rep.Head {
		return fmt.Errorf("custody log %s: its chain holds, but it ends with head %s, not %s: records were appended or removed at its end", path, rep.Head, h)
	}
	fmt.Fprintf(c.App.Writer, "%s: %d record(s), chain intact; head %s\n", path, rep.Records, rep.Head)
	return nil
}
