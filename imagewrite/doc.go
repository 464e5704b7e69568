// Package imagewrite writes container image archives: a base image (or none) plus new layers, as a
// docker-save tarball, an OCI image layout directory or an OCI archive. `imgfs commit` writes a base
// image and one new layer; `imgfs import` writes one layer and no base.
//
// It owns: copying the base image's layer blobs byte for byte (never recompressed; each is hashed while
// it is copied and checked against its digest, so that a corrupt or mislabelled source gives an ErrBase
// error instead of an image whose digests lie; a base layer whose OCI media type contradicts its bytes is
// relabelled); hashing new layers while package compression's block writer compresses them in one
// streaming pass; editing the image config as raw JSON so that fields it does not
// know survive; docker `commit --change` instructions; the manifests, indexes and tar framing of each
// output format; and making the output appear atomically. It must not know FUSE, union rules or tar
// member semantics: a new layer is an opaque stream of tar bytes written by the caller.
//
// # Layers
//
// A new layer's uncompressed tar is hashed (its diff_id) and compressed, and the compressed bytes hashed
// (its digest), as they stream into the output: nothing is held whole in memory. compression.Writer
// cuts the input into 1 MiB blocks and compresses them concurrently as independent gzip members written
// in order (a valid multi-member gzip stream, as pigz -i makes); zstd does the same with 4 MiB blocks as
// independent frames. Block boundaries depend only on the input, never on the number of cores, so the
// output is the same on every machine. Independent blocks also give readers restart points (package
// compression serves zstd layers through their frame table). Headers carry no name and mtime 0.
//
// The written tar files put each new layer straight into the output file: a 512-byte header is reserved,
// the compressed stream written after it, and the header filled in once the digest (the member's name)
// and size are known, so a layer is written once and never copied. An OCI layout gets each new layer in
// a temporary file of its own, renamed to its digest.
//
// # docker-archive
//
// Layer files are named "<digest hex>.tar" (".tar.gz", ".tar.zst" for compressed blobs), the config
// "<config hex>.json"; manifest.json holds one entry {Config, RepoTags, Layers}. There are no legacy
// "<id>/layer.tar" directories: repositories maps each tag to the top layer file's hex name, for tools
// that look for the file; docker load and podman load read manifest.json. A docker-archive stores no
// manifest; Result.ManifestDigest is that of the OCI manifest package archive synthesizes for it.
//
// # Determinism
//
// With the same inputs and the same Config.Created the output is identical byte for byte: JSON objects
// are written with sorted keys, compressed blocks as above, and the archive tars with fixed modes,
// owners 0:0 and every mtime set to Created (clamped to the epoch).
//
// # Output
//
// docker-archive and oci-archive outputs are written to a temporary file in the target's directory,
// fsynced and renamed over the target (an existing file is replaced, as docker save -o does). An oci
// layout is built in a temporary directory beside the target and renamed to it; the target must not
// exist or be an empty directory (an existing layout is never replaced or merged into: it may hold other
// images). On any error or cancellation the temporary file or directory is removed and the target is
// left as it was. The source archive is only read.
package imagewrite
