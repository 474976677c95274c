"""Features the `Workbench` delegates, one module each: `uploads` (the upload workflow), `views`
(a cited passage, its page, its file: checked and audited) and `status` (`workbench status`).
Leaves out: the stages they use, and the wiring (`workbench.pipeline`).
"""
