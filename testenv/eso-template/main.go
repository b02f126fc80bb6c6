// Command eso-template renders templates with External Secrets Operator's own template
// engine: the `Execute` of ESO v2.9.0's package runtime/template/v2 (built against ESO's
// source tree by testenv/eso-template.sh, which writes the go.mod). It is courier's
// test oracle. One JSON request per line on stdin, one JSON answer per line on stdout.
//
// Request: {"template": "...", "data": {"k": "v"}} renders one template as the value
// of key "t" (scope Values, target Data). Optional fields: "data_b64" (values given as
// base64, for bytes that are not UTF-8), "templates" (several keys at once), "scope"
// (Values or KeysAndValues) and "target" (Data, Labels or Annotations).
//
// Answer: {"output": "...", "output_b64": "..."} with the rendered value of "t", or
// {"secret": {"data": {...}, "labels": {...}, "annotations": {...}}} when "templates"
// was given, or {"error": "..."}.
package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"os"

	esapi "github.com/external-secrets/external-secrets/apis/externalsecrets/v1"
	esotemplate "github.com/external-secrets/external-secrets/runtime/template/v2"
	corev1 "k8s.io/api/core/v1"
)

type request struct {
	Template  string            `json:"template"`
	Templates map[string]string `json:"templates"`
	Data      map[string]string `json:"data"`
	DataB64   map[string]string `json:"data_b64"`
	Scope     string            `json:"scope"`
	Target    string            `json:"target"`
}

type secret struct {
	Data        map[string]string `json:"data"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

type answer struct {
	Output    *string `json:"output,omitempty"`
	OutputB64 *string `json:"output_b64,omitempty"`
	Secret    *secret `json:"secret,omitempty"`
	Error     *string `json:"error,omitempty"`
}

func failed(message string) answer {
	return answer{Error: &message}
}

func render(req request) answer {
	data := make(map[string][]byte, len(req.Data)+len(req.DataB64))
	for k, v := range req.Data {
		data[k] = []byte(v)
	}
	for k, v := range req.DataB64 {
		raw, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return failed("bad request: data_b64." + k + ": " + err.Error())
		}
		data[k] = raw
	}
	templates := map[string][]byte{}
	if req.Templates == nil {
		templates["t"] = []byte(req.Template)
	}
	for k, v := range req.Templates {
		templates[k] = []byte(v)
	}
	scope := esapi.TemplateScopeValues
	if req.Scope != "" {
		scope = esapi.TemplateScope(req.Scope)
	}
	target := esapi.TemplateTargetData
	if req.Target != "" {
		target = req.Target
	}
	var out corev1.Secret
	if err := esotemplate.Execute(templates, data, scope, target, &out, esapi.ExternalSecretDecodeNone); err != nil {
		return failed(err.Error())
	}
	if req.Templates == nil {
		text := string(out.Data["t"])
		encoded := base64.StdEncoding.EncodeToString(out.Data["t"])
		return answer{Output: &text, OutputB64: &encoded}
	}
	result := secret{Data: map[string]string{}, Labels: out.Labels, Annotations: out.Annotations}
	for k, v := range out.Data {
		result.Data[k] = string(v)
	}
	return answer{Secret: &result}
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	out := json.NewEncoder(os.Stdout)
	out.SetEscapeHTML(false)
	for in.Scan() {
		var req request
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			_ = out.Encode(failed("bad request: " + err.Error()))
			continue
		}
		if err := out.Encode(render(req)); err != nil {
			os.Exit(1)
		}
	}
}
