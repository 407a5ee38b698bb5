// Package sts is the local STS service: GetCallerIdentity over the AWS query
// protocol (a form-encoded POST, an XML answer), naming a fixed local account.
package sts

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"strings"
)

// IsRequest reports whether r is an AWS query-protocol call (a form POST
// carrying Action), which is how the SDKs and the CLI call STS.
func IsRequest(r *http.Request) bool {
	return r.Method == http.MethodPost &&
		strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") &&
		r.URL.Path == "/"
}

// Handler answers STS calls for account.
func Handler(account string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			writeError(w, "MalformedInput", fmt.Sprintf("parsing form: %v", err))
			return
		}
		switch action := r.PostForm.Get("Action"); action {
		case "GetCallerIdentity":
			type result struct {
				Account string `xml:"Account"`
				Arn     string `xml:"Arn"`
				UserID  string `xml:"UserId"`
			}
			type response struct {
				XMLName   xml.Name `xml:"GetCallerIdentityResponse"`
				Xmlns     string   `xml:"xmlns,attr"`
				Result    result   `xml:"GetCallerIdentityResult"`
				RequestID string   `xml:"ResponseMetadata>RequestId"`
			}
			writeXML(w, http.StatusOK, response{
				Xmlns: "https://sts.amazonaws.com/doc/2011-06-15/",
				Result: result{
					Account: account,
					Arn:     fmt.Sprintf("arn:aws:iam::%s:user/local", account),
					UserID:  "AIDALOCALAWSUSER0000",
				},
				RequestID: "00000000-0000-0000-0000-000000000000",
			})
		default:
			writeError(w, "InvalidAction", fmt.Sprintf("The action %q is not valid for this local endpoint.", action))
		}
	})
}

func writeError(w http.ResponseWriter, code, msg string) {
	type errBody struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	type response struct {
		XMLName   xml.Name `xml:"ErrorResponse"`
		Error     errBody  `xml:"Error"`
		RequestID string   `xml:"RequestId"`
	}
	writeXML(w, http.StatusBadRequest, response{Error: errBody{Type: "Sender", Code: code, Message: msg},
		RequestID: "00000000-0000-0000-0000-000000000000"})
}

func writeXML(w http.ResponseWriter, status int, v any) {
	body, _ := xml.Marshal(v)
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(body)
}
