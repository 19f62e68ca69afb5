"""The multi-view diffusion model, its schedulers and samplers (Eqs. 1-4), model inputs, and the one pipeline that turns a photo into views."""
