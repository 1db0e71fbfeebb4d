// Command etcd is the etcd 3.6 server for the test control plane, built from
// the Go module proxy (the etcd repository's own main module cannot be
// installed with `go install`: it replaces its sub-modules with local paths).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
