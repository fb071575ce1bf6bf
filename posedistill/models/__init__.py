"""posedistill.models"""
