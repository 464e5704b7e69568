// Package custody keeps a chain-of-custody log: JSON lines, one record per evidence action, each
// holding the sha256 of the record before it, so that an edited, removed or reordered record is found.
//
// It also names what an action was applied to: an archive's identity (device, inode, size, mtime and
// ctime) and its sha256, remembered in a cache keyed by that identity (Identify, Hash). It knows
// nothing of images.
//
// The log's format, one record a line (the fields in this order):
//
//	{"seq":1,"time":"2026-12-04T21:40:00.123456789Z","user":"root (uid 0)","host":"lab1","pid":4242,
//	 "command":["imgfs","mount","--evidence",...],"action":"mount","archive":{...},"result":"ok",
//	 "details":{...},"prev":"","sum":"<sha256 hex>"}
//
// seq counts from 1; prev is the sha256 (hex) of the previous line's bytes without its newline ("" for
// the first record); sum is the sha256 of the line's own bytes up to `,"sum":"`, with a closing `}`
// in its place, so that a record edited alone is named by its own line. A chain proves the order and
// completeness of the records before the last one; the last line is protected by its sum against
// accidents only: an examiner who writes down the head (Verify's Report.Head, the sha256 of the last
// line) can later prove that nothing was appended, removed or rewritten at the end.
package custody
