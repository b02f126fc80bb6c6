// A test client that drives argocd-cmp-server the way argocd-repo-server does, with Argo
// CD's own packages: discovery.DetectConfigManagementPlugin (MatchRepository over every
// socket in ARGOCD_PLUGINSOCKFILEPATH, with the repository tarball), then
// CheckPluginConfiguration, GetParametersAnnouncement and GenerateManifest
// (cmp.SendRepoStream). It prints one JSON object on stdout.
//
//	cmp-client APP_PATH REPO_PATH [NAME=VALUE ...]
package main

import (
	"context"
	"encoding/json"
	"os"
	"time"

	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/argoproj/argo-cd/v3/util/app/discovery"
	"github.com/argoproj/argo-cd/v3/util/cmp"
)

type result struct {
	Claimed    bool     `json:"claimed"`
	Discover   string   `json:"discover_error,omitempty"`
	Parameters any      `json:"parameters,omitempty"`
	Manifests  []string `json:"manifests,omitempty"`
	Error      string   `json:"error,omitempty"`
}

func main() {
	appPath, repoPath, env := os.Args[1], os.Args[2], os.Args[3:]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out result
	defer func() { _ = json.NewEncoder(os.Stdout).Encode(out) }()

	conn, client, err := discovery.DetectConfigManagementPlugin(ctx, appPath, repoPath, "", env, nil)
	if err != nil {
		out.Discover = err.Error()
		return
	}
	defer conn.Close()
	out.Claimed = true
	if _, err := client.CheckPluginConfiguration(ctx, &emptypb.Empty{}); err != nil {
		out.Error = "checkPluginConfiguration: " + err.Error()
		return
	}
	announcement, err := client.GetParametersAnnouncement(ctx)
	if err != nil {
		out.Error = "getParametersAnnouncement: " + err.Error()
		return
	}
	if err := cmp.SendRepoStream(ctx, appPath, repoPath, announcement, env, nil); err != nil {
		out.Error = "getParametersAnnouncement: " + err.Error()
		return
	}
	parameters, err := announcement.CloseAndRecv()
	if err != nil {
		out.Error = "getParametersAnnouncement: " + err.Error()
		return
	}
	out.Parameters = parameters.ParameterAnnouncements
	stream, err := client.GenerateManifest(ctx)
	if err != nil {
		out.Error = "generateManifest: " + err.Error()
		return
	}
	if err := cmp.SendRepoStream(ctx, appPath, repoPath, stream, env, nil); err != nil {
		out.Error = "generateManifest: " + err.Error()
		return
	}
	response, err := stream.CloseAndRecv()
	if err != nil {
		out.Error = err.Error()
		return
	}
	out.Manifests = response.Manifests
}
