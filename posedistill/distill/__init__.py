"""posedistill.distill"""
