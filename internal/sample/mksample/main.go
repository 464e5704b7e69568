// Command mksample writes the demo's sample image archive (a legacy docker-save tarball).
package main

import (
	"fmt"
	"os"

	"github.com/imgfs/imgfs/internal/sample"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: mksample OUT.tar")
		os.Exit(2)
	}
	if err := sample.Write(os.Args[1]); err != nil {
		fmt.Fprintf(os.Stderr, "mksample: %v\n", err)
		os.Exit(1)
	}
}
