package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/opencontainers/go-digest"
	"github.com/urfave/cli/v2"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/verify"
)

func verifyCommand() *cli.Command {
	return &cli.Command{
		Name:      "verify",
		Usage:     "prove an image's digests against its bytes: manifest chain, config, every layer's digest and diff_id",
		ArgsUsage: "ARCHIVE",
		Description: "Hashes every blob of the image once (layers several at a time): each index it is reached through,\n" +
			"the manifest and the config (digest and size), each layer blob (digest and size) and its uncompressed\n" +
			"stream (diff_id), and computes the chain ID. --digest pins the manifest digest, image ID or index digest\n" +
			"you expect. One line per blob (--json: one JSON object per line, then a summary object). Exit status 0\n" +
			"only when every claim holds. The archive is only read; what was proven is recorded in the cache, so a\n" +
			"later mount of the unchanged archive does not hash it again.",
		Flags: append(archiveFlags(),
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object per blob and a summary object"},
			&cli.StringFlag{Name: "digest", Usage: "the `sha256:…` digest the image must have: manifest digest, image ID or index digest"},
		),
		Action: runVerify,
	}
}

func runVerify(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageError(c, "want ARCHIVE")
	}
	path := c.Args().First()
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("%s: %w", path, errors.Unwrap(err))
	}
	platform, err := parsePlatform(c.String("platform"))
	if err != nil {
		return err
	}
	pr := newProgress(c.Bool("quiet"), "verifying", 1)
	ap := newProgress(c.Bool("quiet"), "reading archive", 1)
	rep, err := verify.Verify(c.Context, path, verify.Options{
		Image: c.String("image"), Platform: platform, Digest: digest.Digest(c.String("digest")),
		CacheDir: cacheDir(c), Logger: newLogger(c), ArchiveProgress: ap.streamSlot(0),
		Progress: func(i int, p index.Progress) {
			if f := pr.slot(i); f != nil {
				f(p)
			}
		},
	})
	ap.done()
	pr.done()
	if err != nil {
		return fmt.Errorf("verify %s: %w", path, err)
	}
	if c.Bool("json") {
		err = printVerifyJSON(os.Stdout, rep)
	} else {
		err = printVerifyText(os.Stdout, rep)
	}
	if err != nil {
		return err
	}
	if !rep.OK {
		return exitError{1}
	}
	return nil
}

// verifySummary is the last JSON object verify prints.
type verifySummary struct {
	Kind string `json:"kind"` // "summary"
	*verify.Report
	ImgfsVersion buildInfo `json:"imgfsVersion"` // the imgfs that wrote it (as --version)
}

func printVerifyJSON(w io.Writer, rep *verify.Report) error {
	enc := json.NewEncoder(w)
	for _, r := range rep.Results {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return enc.Encode(verifySummary{Kind: "summary", Report: rep, ImgfsVersion: readBuildInfo()})
}

func printVerifyText(w io.Writer, rep *verify.Report) error {
	for _, r := range rep.Results {
		if _, err := fmt.Fprintln(w, verifyLine(r)); err != nil {
			return err
		}
	}
	var b strings.Builder
	if rep.OK {
		fmt.Fprintf(&b, "verified %s: every claim holds", rep.Archive)
	} else {
		fmt.Fprintf(&b, "FAILED %s: %d of %d results do not hold", rep.Archive, rep.Failed, len(rep.Results))
	}
	if len(rep.Names) > 0 {
		fmt.Fprintf(&b, "; image %s", strings.Join(rep.Names, ", "))
	}
	if rep.ManifestDigest != "" {
		fmt.Fprintf(&b, "; manifest %s; image ID %s", rep.ManifestDigest, rep.ImageID)
	}
	if rep.ChainID != "" {
		fmt.Fprintf(&b, "; chain ID %s", rep.ChainID)
	}
	_, err := fmt.Fprintln(w, b.String())
	return err
}

// verifyLine is one result as a line: verdict, what, its checks; for a result that does not hold,
// where the blob is and why.
func verifyLine(r verify.Result) string {
	var b strings.Builder
	what := r.Kind
	if r.Layer > 0 {
		what = fmt.Sprintf("layer %d", r.Layer)
	}
	if r.Image != "" {
		what += " of " + short(digest.Digest(r.Image))
	}
	b.WriteString(strings.TrimRight(fmt.Sprintf("%-8s %-8s %s", strings.ToUpper(r.Verdict), what, r.Digest), " "))
	var parts []string
	for _, ch := range r.Checks {
		switch {
		case ch.OK && (ch.Claim == "digest" && ch.Actual == string(r.Digest) || ch.Claim == "pinned_digest"):
			parts = append(parts, ch.Claim+" ok")
		case ch.OK && ch.Claim == "chain_id":
		case ch.Claim == "chain_id":
			parts = append(parts, "not proven")
		case ch.OK:
			parts = append(parts, ch.Claim+" "+ch.Actual)
		case ch.Actual == "" && ch.Expected == "":
			parts = append(parts, ch.Claim+" not computed")
		default:
			parts = append(parts, fmt.Sprintf("%s BROKEN: expected %s, actual %s", ch.Claim, orDash(ch.Expected), orText(ch.Actual, "(not computable)")))
		}
	}
	if len(parts) > 0 {
		b.WriteString(": " + strings.Join(parts, ", "))
	}
	if r.Verdict != verify.OK {
		if r.Where != "" && !strings.Contains(r.Error, r.Where) {
			b.WriteString("; at " + r.Where)
		}
		if r.ClaimedBy != "" {
			b.WriteString("; claimed by " + r.ClaimedBy)
		}
	}
	if r.Error != "" {
		b.WriteString("; " + r.Error)
	}
	for _, n := range r.Notes {
		b.WriteString("; note: " + n)
	}
	return b.String()
}

func orDash(s string) string { return orText(s, "-") }

func orText(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}
