package verify

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	ispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/imgfs/imgfs/archive"
	"github.com/imgfs/imgfs/compression"
	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/internal/digests"
)

// Options configure Verify.
type Options struct {
	// Image selects the image as archive.Image does ("" for the only one, or the one Digest names).
	Image string
	// Platform selects among a multi-platform index's images; nil means the host's.
	Platform *ispec.Platform
	// Digest, when set, pins what the image must be: its manifest digest, its image ID (the config
	// digest) or the digest of an index it was reached through (what a registry or release page shows).
	Digest digest.Digest
	// CacheDir is the index cache the proofs are recorded in (and tables built into); "" records nothing.
	CacheDir string
	// Workers bounds the layers proven at once; 0 means one per CPU.
	Workers int
	// Logger receives the index's and archive's warnings; nil discards.
	Logger *slog.Logger
	// Progress, when set, is called while layer i (from 0) is proven.
	Progress func(i int, p index.Progress)
	// ArchiveProgress, when set, is called while a compressed archive file is indexed at open.
	ArchiveProgress func(compression.Progress)
}

// Verdicts of a Result.
const (
	OK       = "ok"       // every claim about the blob holds
	Mismatch = "mismatch" // a claim is broken: a Check says which
	Error    = "error"    // the blob could not be checked (missing, unreadable, not indexable)
	Unproven = "unproven" // chain_id only: computed from diff_ids that did not all hold
)

// Result is what Verify found about one blob (or, for kinds chain_id and pin, one derived claim).
type Result struct {
	// Kind is "index", "manifest", "config", "layer", "chain_id" or "pin"; "archive" and "image" report
	// why the archive or the image could not be read (what follows them was not checked).
	Kind string `json:"kind"`
	// Image names the image the result belongs to when the archive's every image is verified (its
	// manifest digest, or image ID); "" when one image was.
	Image string `json:"image,omitempty"`
	// Layer numbers a layer from 1, bottom first.
	Layer int `json:"layer,omitempty"`
	// Digest names the blob: the digest its parent claims (for a docker-save config or a layer whose
	// digest nothing claims, the one computed).
	Digest digest.Digest `json:"digest,omitempty"`
	// Where is the blob's place in the archive: a file path, or a member name and its offset.
	Where string `json:"where,omitempty"`
	// ClaimedBy names the document whose claims were checked ("index.json", "manifest sha256:…",
	// "config sha256:…" for a diff_id, "manifest.json").
	ClaimedBy string `json:"claimed_by,omitempty"`
	// Checks are the claims compared, in order.
	Checks []Check `json:"checks"`
	// Verdict is OK, Mismatch, Error or Unproven.
	Verdict string `json:"verdict"`
	// Error says why the blob could not be checked (Verdict Error), or what else went wrong.
	Error string `json:"error,omitempty"`
	// Notes are remarks that break no claim (a media type naming another compression, say).
	Notes []string `json:"notes,omitempty"`
}

// Check is one claim compared with what the bytes are.
type Check struct {
	// Claim is "size", "digest", "diff_id", "image_id", "chain_id" or "pinned_digest".
	Claim string `json:"claim"`
	// Expected is the claimed value; "" when nothing claims one (then Actual is reported, and OK).
	Expected string `json:"expected"`
	// Actual is what the bytes are; "" when it could not be computed.
	Actual string `json:"actual"`
	// OK says the claim holds.
	OK bool `json:"ok"`
}

// Report is the outcome of Verify.
type Report struct {
	Archive string        `json:"archive"`
	Format  string        `json:"format,omitempty"`
	Names   []string      `json:"names,omitempty"`
	Results []Result      `json:"-"`
	ChainID digest.Digest `json:"chain_id,omitempty"`
	// ManifestDigest and ImageID are the image's, as proven when OK.
	ManifestDigest digest.Digest `json:"manifest_digest,omitempty"`
	ImageID        digest.Digest `json:"image_id,omitempty"`
	// Pinned is the pinned digest, when one was given.
	Pinned digest.Digest `json:"pinned,omitempty"`
	// OK says every result's verdict is OK.
	OK bool `json:"ok"`
	// Failed counts the results that are not OK.
	Failed int `json:"failed"`
}

// Verify proves the claims of the image opts select in the archive at path against its bytes: every
// document of its chain (each index it was reached through, the manifest, the config: digest and
// size), each layer blob (digest, size, and the diff_id of its uncompressed stream, each blob read
// once, several at a time) and the chain ID, and the pinned digest. It never writes to the archive.
// Broken claims are results, not errors: the error is for a bad pin, a cancelled context or a cache
// that cannot be written. Proven layers are recorded in the cache through index.Prove.
func Verify(ctx context.Context, path string, opts Options) (*Report, error) {
	if opts.Digest != "" {
		if err := digests.Check(opts.Digest); err != nil {
			return nil, fmt.Errorf("pinned digest: %w", err)
		}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Report{Archive: path, Pinned: opts.Digest}
	a, err := archive.Open(ctx, path, archive.Options{CacheDir: opts.CacheDir, Logger: log, Progress: opts.ArchiveProgress})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		r.add(Result{Kind: "archive", Where: path, Verdict: Error, Error: err.Error()})
		return r.finish(), nil
	}
	defer a.Close()
	r.Format = string(a.Format())

	memo := map[string]Result{}
	targets, err := selection(a, opts)
	if err != nil {
		r.add(Result{Kind: "image", Where: path, Verdict: Error, Error: err.Error()})
		return r.finish(), nil
	}
	for _, t := range targets {
		if err := verifyImage(ctx, a, r, t, len(targets) > 1, opts, memo, log); err != nil {
			return nil, err
		}
	}
	return r.finish(), nil
}

// target is one image to verify: a reference and platform that select it.
type target struct {
	ref      string
	platform *ispec.Platform
}

// selection lists the images to verify: the one opts select; with no reference, the one a pinned
// digest names, else the only image, else (with no platform either) every image of the archive, every
// platform of a multi-platform index included.
func selection(a *archive.Archive, opts Options) ([]target, error) {
	if opts.Image != "" {
		return []target{{opts.Image, opts.Platform}}, nil
	}
	if opts.Digest != "" {
		if _, err := a.Chain(string(opts.Digest), opts.Platform); err == nil {
			return []target{{string(opts.Digest), opts.Platform}}, nil
		} else if !errors.Is(err, archive.ErrNotFound) {
			return nil, err
		}
	}
	if len(a.Images()) <= 1 || opts.Platform != nil {
		return []target{{"", opts.Platform}}, nil // the only image (or the error, reported when it is read)
	}
	var out []target
	for _, ref := range a.Images() {
		id := ref.ManifestDigest
		if id == "" {
			id = ref.ImageID
		}
		if id == "" {
			return nil, fmt.Errorf("image %d of the archive has no digest to select it by: verify it with --image", ref.Index+1)
		}
		out = append(out, target{string(id), ref.Platform})
	}
	return out, nil
}

// verifyImage verifies one image into r; label says to name the image in its results. memo holds
// the layers already proven in this run (a layer shared by several images is read once).
func verifyImage(ctx context.Context, a *archive.Archive, r *Report, t target, label bool, opts Options, memo map[string]Result, log *slog.Logger) error {
	start := len(r.Results)
	defer func() {
		if label {
			for i := start; i < len(r.Results); i++ {
				r.Results[i].Image = cmpOr(t.ref, "(only image)")
			}
		}
	}()
	docs, err := a.Chain(t.ref, t.platform)
	if err != nil {
		r.add(Result{Kind: "image", Where: r.Archive, Verdict: Error, Error: err.Error()})
		return nil
	}
	var layerDocs []archive.Doc
	for _, d := range docs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.Kind == "layer" {
			layerDocs = append(layerDocs, d)
			continue
		}
		r.add(checkDoc(a, d))
	}
	img, err := a.Image(ctx, t.ref, t.platform)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// The image cannot be read as a whole (a blob missing or cut short, a document broken): the
		// layer blobs the manifest names are still checked for size and digest, to say which is.
		r.add(Result{Kind: "image", Where: r.Archive, Verdict: Error, Error: "diff_ids not checked: " + err.Error()})
		for i, d := range layerDocs {
			res := checkDoc(a, d)
			res.Layer = i + 1
			r.add(res)
		}
		return nil
	}
	if !label {
		r.Names, r.ManifestDigest, r.ImageID = img.Names, img.ManifestDigest, img.ConfigDigest
	}
	layers, err := proveLayers(ctx, a, img, opts, memo, log)
	if err != nil {
		return err
	}
	allDiffIDs := true
	for _, res := range layers {
		r.add(res)
		allDiffIDs = allDiffIDs && res.check("diff_id")
	}
	chainID := ChainID(img)
	if !label {
		r.ChainID = chainID
	}
	cr := Result{Kind: "chain_id", Digest: chainID, ClaimedBy: "config " + string(img.ConfigDigest), Verdict: OK,
		Checks: []Check{{Claim: "chain_id", Actual: string(chainID), OK: allDiffIDs}}}
	if !allDiffIDs {
		cr.Verdict = Unproven
		cr.Notes = []string{"computed from the config's diff_ids, which the layers do not all bear out"}
	}
	if len(img.Layers) == 0 {
		cr.Notes = []string{"the image has no layers"}
	}
	r.add(cr)
	if opts.Digest != "" {
		r.add(pin(opts.Digest, docs, img, r.Results[start:]))
	}
	return nil
}

func cmpOr(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

func (r *Report) add(res Result) {
	if res.Checks == nil {
		res.Checks = []Check{}
	}
	r.Results = append(r.Results, res)
}

func (r *Report) finish() *Report {
	r.Failed = 0
	for _, res := range r.Results {
		if res.Verdict != OK {
			r.Failed++
		}
	}
	r.OK = r.Failed == 0 && len(r.Results) > 0
	return r
}

// check says whether the result's check of claim holds (false when it was not made).
func (res *Result) check(claim string) bool {
	for _, c := range res.Checks {
		if c.Claim == claim {
			return c.OK
		}
	}
	return false
}

// verdict sets the verdict from the checks: Mismatch when a claim is contradicted by a value computed
// from the bytes, else Error when err is set (or a value could not be computed), else OK.
func (res *Result) verdict(err error) {
	res.Verdict = OK
	for _, c := range res.Checks {
		switch {
		case c.OK:
		case c.Actual != "":
			res.Verdict = Mismatch
		case res.Verdict == OK:
			res.Verdict = Error
		}
	}
	if err != nil {
		res.Error = err.Error()
		if res.Verdict == OK {
			res.Verdict = Error
		}
	}
}

// checkDoc hashes one document of the chain against its claims.
func checkDoc(a *archive.Archive, d archive.Doc) Result {
	res := Result{Kind: d.Kind, Digest: d.Digest, ClaimedBy: d.ClaimedBy}
	if d.Missing != nil {
		res.Where = d.Source
		res.Verdict, res.Error = Error, "not in the archive: "+d.Missing.Error()
		if d.Source == "" {
			res.Error = d.Missing.Error()
		}
		return res
	}
	res.Where = a.Where(d.Source, d.Blob)
	if d.Size >= 0 {
		res.Checks = append(res.Checks, Check{Claim: "size", Expected: fmt.Sprint(d.Size), Actual: fmt.Sprint(d.Blob.Size), OK: d.Size == d.Blob.Size})
	}
	alg := d.Digest.Algorithm()
	if d.Digest == "" {
		alg = digest.SHA256
	}
	got, err := hashBlob(d.Blob, alg)
	claim := "digest"
	if d.Kind == "config" && d.Digest == "" {
		claim = "image_id"
		res.Digest = got
	}
	c := Check{Claim: claim, Expected: string(d.Digest), Actual: string(got), OK: err == nil && (d.Digest == "" || got == d.Digest)}
	if d.Digest == "" {
		c.Expected = ""
		res.Notes = append(res.Notes, "nothing in the archive claims this config's digest (its file name spells none); the image ID is computed")
	}
	res.Checks = append(res.Checks, c)
	res.verdict(err)
	return res
}

// hashBlob hashes a small blob with the algorithm of its claim.
func hashBlob(b compression.Blob, alg digest.Algorithm) (digest.Digest, error) {
	var h hash.Hash = sha256.New()
	if alg == digest.SHA512 {
		h = sha512.New()
	}
	if _, err := io.Copy(h, io.NewSectionReader(b.R, b.Off, b.Size)); err != nil {
		return "", fmt.Errorf("reading: %w", err)
	}
	return digest.NewDigestFromEncoded(alg, hex.EncodeToString(h.Sum(nil))), nil
}

// proveLayers proves every layer, opts.Workers at a time, and returns their results in order.
func proveLayers(ctx context.Context, a *archive.Archive, img *archive.Image, opts Options, memo map[string]Result, log *slog.Logger) ([]Result, error) {
	n := len(img.Layers)
	out := make([]Result, n)
	key := func(i int) string {
		l := img.Layers[i]
		b, _ := l.Blob()
		return fmt.Sprintf("%s %s %s %d", l.Digest, l.DiffID, l.Source, b.Off)
	}
	var todo []int
	for i := range n {
		if res, ok := memo[key(i)]; ok {
			res.Layer = i + 1
			res.Notes = append(append([]string(nil), res.Notes...), "the same blob as a layer proven above, read once")
			out[i] = res
			continue
		}
		todo = append(todo, i)
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	if opts.Progress != nil {
		for _, i := range todo { // the whole amount of work, before the first byte is read
			opts.Progress(i, index.Progress{Total: img.Layers[i].Size})
		}
	}
	workers = min(workers, len(todo))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				out[i] = proveLayer(ctx, a, img, i, opts, log)
			}
		}()
	}
	for _, i := range todo {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, i := range todo {
		memo[key(i)] = out[i]
	}
	return out, nil
}

// proveLayer proves layer i: size (against the manifest's descriptor), digest and diff_id, in one
// read of the blob by index.Prove, which also builds the layer's table when the cache has none for
// these bytes and records the proof.
func proveLayer(ctx context.Context, a *archive.Archive, img *archive.Image, i int, opts Options, log *slog.Logger) Result {
	l := img.Layers[i]
	res := Result{Kind: "layer", Layer: i + 1, Digest: l.Digest, ClaimedBy: "manifest " + string(img.ManifestDigest)}
	if a.Format() == archive.FormatDockerArchive || a.Format() == archive.FormatDockerDir {
		res.ClaimedBy = "manifest.json"
	}
	blob, err := l.Blob()
	if err != nil {
		res.Verdict, res.Error = Error, err.Error()
		return res
	}
	res.Where = a.Where(l.Source, blob)
	sc := Check{Claim: "size", Actual: fmt.Sprint(blob.Size), OK: true}
	if res.ClaimedBy != "manifest.json" { // docker-save's manifest.json claims no sizes
		size := int64(-1)
		if i < len(img.Manifest.Layers) {
			size = img.Manifest.Layers[i].Size
		}
		sc.Expected, sc.OK = fmt.Sprint(size), size == blob.Size
	}
	res.Checks = append(res.Checks, sc)
	var progress func(index.Progress)
	if opts.Progress != nil {
		progress = func(p index.Progress) { opts.Progress(i, p) }
	}
	layer, proof, err := index.Prove(ctx, blob, index.Options{CacheDir: opts.CacheDir, Digest: l.Digest, DiffID: l.DiffID, Logger: log, Progress: progress})
	if layer != nil {
		layer.Close()
	}
	dc := Check{Claim: "digest", Expected: string(l.Digest), Actual: string(proof.Digest), OK: proof.Digest == l.Digest}
	if l.DigestComputed {
		dc.Expected = ""
		res.Notes = append(res.Notes, "nothing in the archive claims this compressed blob's digest; it is computed")
	}
	res.Checks = append(res.Checks, dc,
		Check{Claim: "diff_id", Expected: string(l.DiffID), Actual: string(proof.DiffID), OK: proof.DiffID == l.DiffID})
	if mt := archive.LayerMediaType(proof.Compression); err == nil && !sameCompression(l.MediaType, mt) {
		res.Notes = append(res.Notes, fmt.Sprintf("media type %s, but the blob is %s (read by its content)", l.MediaType, compressionName(proof.Compression)))
	}
	if err != nil && ctx.Err() == nil {
		res.verdict(err)
	} else {
		res.verdict(nil)
	}
	return res
}

// sameCompression says whether media type mt names the compression of the OCI layer type want.
func sameCompression(mt, want string) bool {
	kind := func(t string) string {
		switch {
		case strings.HasSuffix(t, "gzip"):
			return "gzip"
		case strings.HasSuffix(t, "zstd"):
			return "zstd"
		}
		return "none"
	}
	return kind(mt) == kind(want)
}

func compressionName(c compression.Format) string {
	if c == compression.None {
		return "uncompressed"
	}
	return c.String()
}

// pin checks the pinned digest against the digests of the image's chain that were proven.
func pin(want digest.Digest, docs []archive.Doc, img *archive.Image, results []Result) Result {
	res := Result{Kind: "pin", Digest: want}
	proven := map[digest.Digest]string{}
	for _, r := range results {
		if r.Verdict == OK && (r.Kind == "index" || r.Kind == "manifest" || r.Kind == "config") {
			proven[r.Digest] = r.Kind
		}
	}
	allOK := true
	for _, r := range results {
		allOK = allOK && r.Verdict == OK
	}
	legacy := len(docs) == 1 && docs[0].Kind == "config"
	if legacy && allOK {
		// imgfs's synthesized manifest (what inspect shows) is derived from proven digests only.
		proven[img.ManifestDigest] = "manifest"
	}
	actual := img.ManifestDigest
	if legacy {
		actual = img.ConfigDigest
	}
	kind, ok := proven[want]
	if ok {
		actual = want
		res.Notes = append(res.Notes, "the pinned digest is the image's "+map[string]string{"index": "index", "manifest": "manifest", "config": "image ID (config digest)"}[kind])
	} else {
		var have []string
		for _, d := range docs {
			have = append(have, d.Kind+" "+string(d.Digest))
		}
		have = append(have, "image ID "+string(img.ConfigDigest))
		res.Notes = append(res.Notes, "the image's digests: "+strings.Join(have, ", "))
	}
	res.Checks = []Check{{Claim: "pinned_digest", Expected: string(want), Actual: string(actual), OK: ok}}
	res.verdict(nil)
	return res
}

// ChainID is the OCI chain ID of the image's layers: the first diff_id, then
// sha256(chain + " " + diff_id) for each next one; "" for an image without layers.
func ChainID(img *archive.Image) digest.Digest {
	var chain digest.Digest
	for i, l := range img.Layers {
		if i == 0 {
			chain = l.DiffID
			continue
		}
		chain = digest.FromString(string(chain) + " " + string(l.DiffID))
	}
	return chain
}
