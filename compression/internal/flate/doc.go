// Package flate is an inflater (RFC 1951) that can stop and restart at block boundaries: a hook is
// called at the end of every block with the input position of the next one, and Resume starts decoding
// there given the preceding 32 KiB of output.
//
// It is a fork of github.com/klauspost/compress v1.20.4, package flate (inflate.go, dict_decoder.go and
// the *bufio.Reader decoder of inflate_gen.go), itself derived from the Go standard library's
// compress/flate; see LICENSE (BSD-3-Clause). Changes from upstream:
//   - only *bufio.Reader input is supported (the other generated decoders are dropped);
//   - a stored block no longer counts the bytes left in the bit buffer twice in the input offset, which
//     made every later block-end offset of upstream's WithEobCallback too large;
//   - the block hook survives Reset and Resume, and it copies the window only when it asks for it
//     (AppendWindow), instead of for every block;
//   - an exported Reader type with Reset, Resume, SetBlockHook and AppendWindow replaces the
//     io.ReadCloser constructors and options.
package flate
