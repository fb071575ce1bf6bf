"""posedistill.infer"""
