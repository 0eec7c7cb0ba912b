// Command etcd runs the etcd server for the local test control plane.
//
// The etcd project publishes its server as a Go module but no installable main
// package, so this wraps etcdmain. Flags are etcd's own.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
