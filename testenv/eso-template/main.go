// Command eso-template renders Go templates as External Secrets Operator's template
// engine v2 executes them: text/template with the option missingkey=error, sprig v3's
// TxtFuncMap without env, expandenv and getHostByName, executed over the secret data as
// a map of strings. It is courier's test oracle: one JSON case per line on stdin
// ({"template": "...", "data": {"k": "v"}}), one JSON answer per line on stdout
// ({"output": "..."} or {"error": "..."}).
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"text/template"

	"github.com/Masterminds/sprig/v3"
)

type request struct {
	Template string            `json:"template"`
	Data     map[string]string `json:"data"`
}

type answer struct {
	Output *string `json:"output,omitempty"`
	Error  *string `json:"error,omitempty"`
}

func render(funcs template.FuncMap, req request) answer {
	parsed, err := template.New("t").Option("missingkey=error").Funcs(funcs).Parse(req.Template)
	if err != nil {
		message := err.Error()
		return answer{Error: &message}
	}
	var out bytes.Buffer
	if err := parsed.Execute(&out, req.Data); err != nil {
		message := err.Error()
		return answer{Error: &message}
	}
	text := out.String()
	return answer{Output: &text}
}

func main() {
	funcs := sprig.TxtFuncMap()
	for _, name := range []string{"env", "expandenv", "getHostByName"} {
		delete(funcs, name)
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	out := json.NewEncoder(os.Stdout)
	out.SetEscapeHTML(false)
	for in.Scan() {
		var req request
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			message := "bad request: " + err.Error()
			_ = out.Encode(answer{Error: &message})
			continue
		}
		if err := out.Encode(render(funcs, req)); err != nil {
			os.Exit(1)
		}
	}
}
