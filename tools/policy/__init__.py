"""The policy engine of approvals (issue 11): which calls run, which ask, which are denied."""
