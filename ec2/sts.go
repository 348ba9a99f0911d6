package ec2

// STS: GetCallerIdentity names the key's project as the account, so
// tools that check "which account am I in" (Terraform's provider does at
// start) see the project.

func init() {
	register(stsAPI, Action{Name: "GetCallerIdentity", Run: getCallerIdentity})
}

// ResponseMetadata ends every STS answer.
type ResponseMetadata struct {
	ResponseMetadata struct {
		RequestID string `xml:"RequestId"`
	} `xml:"ResponseMetadata"`
}

func (r *ResponseMetadata) setRequestID(id string) { r.ResponseMetadata.RequestID = id }

type getCallerIdentityResponse struct {
	Result struct {
		Arn     string `xml:"Arn"`
		UserID  string `xml:"UserId"`
		Account string `xml:"Account"`
	} `xml:"GetCallerIdentityResult"`
	ResponseMetadata
}

func getCallerIdentity(c *Call) (any, error) {
	var out getCallerIdentityResponse
	out.Result.Account = c.Project
	out.Result.Arn = userARN(c.Project, c.ID.User)
	out.Result.UserID = c.Key.Spec.AccessKeyID
	return &out, nil
}

// userARN is the caller's ARN: the project stands for the account.
func userARN(project, user string) string {
	return "arn:aws:iam::" + project + ":user/" + user
}
