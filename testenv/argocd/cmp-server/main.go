// argocd-cmp-server, built from Argo CD's own module (pinned in ../go.mod): the sidecar
// server that runs a Config Management Plugin, unchanged. Flags as upstream's
// (--config-dir-path); the socket directory comes from ARGOCD_PLUGINSOCKFILEPATH.
package main

import (
	"os"

	"github.com/argoproj/argo-cd/v3/cmd/argocd-cmp-server/commands"
)

func main() {
	if err := commands.NewCommand().Execute(); err != nil {
		os.Exit(1)
	}
}
